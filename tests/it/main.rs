//! The one integration-test binary (`autotests = false`): every test that drives the
//! library or the `postroom` binary lives in a module here.

#[path = "../support/genmail.rs"]
#[allow(dead_code)]
mod genmail;
#[path = "../support/dovecot.rs"]
#[allow(dead_code)]
mod dovecot;
mod support;

mod architecture;
mod cli;
mod corpus;
mod crash;
mod import;
mod store;
mod threading;
