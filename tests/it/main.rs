//! The one integration-test binary (`autotests = false`): every test that drives the
//! library or the `postroom` binary lives in a module here.
//!
//! Test code may unwrap: a panic is the test failing with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../support/browser.rs"]
#[allow(dead_code)]
mod browser;
#[path = "../support/dovecot.rs"]
#[allow(dead_code)]
mod dovecot;
#[path = "../support/genmail.rs"]
#[allow(dead_code)]
mod genmail;
#[path = "../support/smtpd.rs"]
#[allow(dead_code)]
mod smtpd;
mod support;

mod admin_accounts;
mod admin_creation;
mod admin_filters;
mod admin_log;
mod admin_mailboxes;
mod admin_people;
mod admin_settings;
mod architecture;
mod browser_selftest;
mod cli;
mod corpus;
mod crash;
mod dovecot_selftest;
mod fakeserver;
mod https;
mod import;
mod intake;
mod outgoing;
mod smtpd_selftest;
mod store;
mod threading;
mod web;
mod webui;
mod webui_browser;
