//! The command line: subcommands, their help, and how their results are printed.
//!
//! Owns: argument parsing (clap), rendering lists and JSON for people and scripts, the
//! import progress bar.
//! Must not: hold business rules; it calls `app`, `import`, `store` readers and `config`.

use crate::accounts::{self, AccountInput};
use crate::app::{self, AppError, DataDir};
use crate::config;
use crate::fetch::FetchCtx;
use crate::import::{self, ImportReport};
use crate::mailboxes::MailboxInput;
use crate::model::{
    AccountRecord, ConvId, ConversationRecord, Direction, MailboxId, MessageRecord, RawId,
    SmtpRecord, Status, SystemClock, format_rfc3339, format_utc,
};
use crate::net::Fingerprint;
use crate::secret::Secret;
use crate::smtp::servers::SmtpInput;
use clap::{Parser, Subcommand};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

/// `println!` through `control::emit`: to the terminal, or to the caller of the control
/// socket when the running service executes the command; a closed stdout
/// (`postroom conversations | head`) ends quietly instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        crate::control::emit(crate::control::Stream::Stdout, line.as_bytes());
    }};
}

/// `eprintln!` through `control::emit` (see `out!`).
macro_rules! err {
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        crate::control::emit(crate::control::Stream::Stderr, line.as_bytes());
    }};
}

/// Postroom: the office's shared mailboxes as a helpdesk, in one small program.
///
/// Start the service with `postroom serve`; everything lives in one data directory.
#[derive(Parser, Debug)]
#[command(name = "postroom", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Data directory (store, keys, certificates). Created on first use.
    #[arg(long, global = true, env = "POSTROOM_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per run
pub enum Command {
    /// Run the service: fetch mail, process it, serve the team (stops on Ctrl-C/SIGTERM)
    Serve {
        /// Address and port of the web interface (port 0: any free port)
        #[arg(long, env = "POSTROOM_LISTEN", default_value = crate::web::DEFAULT_LISTEN, value_name = "ADDR:PORT")]
        listen: String,
        /// Address and port of the web interface over HTTPS, with a self-signed
        /// certificate kept in the data directory (port 0: any free port)
        #[arg(long, env = "POSTROOM_HTTPS_LISTEN", default_value = crate::web::tls::DEFAULT_HTTPS_LISTEN, value_name = "ADDR:PORT")]
        https_listen: String,
        /// Do not serve HTTPS (plain HTTP only)
        #[arg(long)]
        no_https: bool,
        /// Host name announced by mDNS on the LAN (NAME.local); not announced when
        /// listening on loopback only
        #[arg(long, env = "POSTROOM_MDNS_NAME", default_value = crate::mdns::DEFAULT_NAME, value_name = "NAME")]
        mdns_name: String,
        /// Do not announce the service by mDNS
        #[arg(long)]
        no_mdns: bool,
    },
    /// Import mail from .eml files, directories of them, mbox files or Maildirs
    ///
    /// Importing the same mail twice adds nothing: identical bytes and repeated
    /// Message-IDs are recognised and counted as duplicates.
    Import {
        /// Files or directories to import
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Mailbox to put new conversations in (created if missing)
        #[arg(long, value_name = "NAME")]
        mailbox: Option<String>,
        /// Never draw a progress bar
        #[arg(long)]
        quiet: bool,
    },
    /// List conversations, newest activity first
    Conversations {
        /// Print JSON (one array) instead of a table
        #[arg(long)]
        json: bool,
        /// Only conversations with this status (active, pending, closed, spam)
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
        /// At most this many (0 = all)
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
    },
    /// Show one conversation with its messages
    Conversation {
        /// Conversation number (as in the subject tag [#N])
        id: u64,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Print the exact bytes of a stored raw message (as received)
    Raw {
        /// Raw message id (shown by `postroom conversation ID`)
        id: u64,
    },
    /// Show the communication log (what happened to mail)
    Log {
        /// How many of the newest entries (0 = all)
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Show or change settings: no argument lists them, KEY shows one, KEY VALUE sets it
    Settings {
        key: Option<String>,
        value: Option<String>,
    },
    /// Add, change, list and remove the mail accounts Postroom fetches from
    #[command(subcommand)]
    Account(AccountCmd),
    /// Fetch new mail from one account now (one pass), then process it
    Fetch {
        /// Account name
        name: String,
    },
    /// Add, change, list, remove and test the SMTP servers replies leave through
    #[command(subcommand)]
    Smtp(SmtpCmd),
    /// Add, change and list mailboxes (shared inboxes) and their addresses
    #[command(subcommand)]
    Mailbox(MailboxCmd),
    /// Add, change and list the people who log in to the web UI
    #[command(subcommand)]
    User(UserCmd),
    /// Reply to a conversation: the body comes from --body-file or stdin
    Reply {
        /// Conversation number
        conv: u64,
        /// Read the body from this file (default: stdin)
        #[arg(long, value_name = "FILE")]
        body_file: Option<PathBuf>,
        /// The body as text (used when a running service executes the command)
        #[arg(long, hide = true, conflicts_with = "body_file")]
        body: Option<String>,
        /// Send from this address of the mailbox (default: the one the customer wrote to)
        #[arg(long, value_name = "ADDRESS")]
        from: Option<String>,
        /// Recipient instead of the customer (repeatable)
        #[arg(long, value_name = "ADDRESS")]
        to: Vec<String>,
        /// Copy to (repeatable)
        #[arg(long, value_name = "ADDRESS")]
        cc: Vec<String>,
        /// Attach a file (repeatable)
        #[arg(long, value_name = "FILE")]
        attach: Vec<PathBuf>,
        /// Quote the message being answered
        #[arg(long)]
        quote: bool,
        /// Who writes (for "agent via mailbox" and the signature)
        #[arg(long, value_name = "NAME", env = "POSTROOM_AGENT")]
        agent: Option<String>,
    },
    /// Add an internal note to a conversation (never mailed): body from --body-file or stdin
    Note {
        /// Conversation number
        conv: u64,
        /// Read the note from this file (default: stdin)
        #[arg(long, value_name = "FILE")]
        body_file: Option<PathBuf>,
        /// The note as text
        #[arg(long, conflicts_with = "body_file")]
        body: Option<String>,
        /// Who writes
        #[arg(long, value_name = "NAME", env = "POSTROOM_AGENT")]
        agent: Option<String>,
    },
    /// Show the outbox (queued, sent and failed mail), or send what is due now
    Outbox {
        /// Deliver every due message now (the service does this by itself)
        #[arg(long)]
        send: bool,
        /// Retry every waiting message now instead of at its next attempt (implies --send)
        #[arg(long)]
        retry_now: bool,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    /// Whether the command reads its body from stdin (no file or text given): the
    /// caller reads stdin before sending the command to a running service.
    pub fn wants_stdin(&self) -> bool {
        matches!(
            self,
            Command::Reply {
                body_file: None,
                body: None,
                ..
            } | Command::Note {
                body_file: None,
                body: None,
                ..
            }
        )
    }
}

/// What a command may use when the running service executes it.
pub struct Service {
    pub fetch: FetchCtx,
    /// Wakes the outbox sender (a reply was queued).
    pub outbox: smol::channel::Sender<()>,
}

/// The fields of a mailbox, as flags (used by `mailbox add` and `mailbox edit`).
#[derive(clap::Args, Debug, Default)]
pub struct MailboxFlags {
    /// The mailbox's address: replies leave from it, mail to it lands here
    #[arg(long, value_name = "ADDRESS")]
    address: Option<String>,
    /// Display name in From (default: the mailbox name)
    #[arg(long = "name", value_name = "TEXT")]
    display_name: Option<String>,
    /// Add an alias address (repeatable); addresses are never deleted, see --validity
    #[arg(long = "alias", value_name = "ADDRESS")]
    aliases: Vec<String>,
    /// Make an address valid, invalid or temporarily-invalid: ADDRESS=STATE (repeatable)
    #[arg(long = "validity", value_name = "ADDRESS=STATE")]
    validity: Vec<String>,
    /// The admin's note on an address: ADDRESS=TEXT (repeatable)
    #[arg(long = "comment", value_name = "ADDRESS=TEXT")]
    comments: Vec<String>,
    /// Whose name From carries: mailbox, or agent-via-mailbox ("Anna via Support")
    #[arg(long, value_name = "POLICY")]
    from_policy: Option<String>,
    /// Signature appended to replies (a template; see --signature-file)
    #[arg(long, value_name = "TEXT", conflicts_with = "signature_file")]
    signature: Option<String>,
    /// Read the signature from this file
    #[arg(long, value_name = "FILE")]
    signature_file: Option<PathBuf>,
    /// Send a copy of every reply to this address ("" removes it)
    #[arg(long, value_name = "ADDRESS")]
    bcc: Option<String>,
    /// Answer new conversations automatically: on or off
    #[arg(long, value_name = "on|off")]
    auto_reply: Option<String>,
    /// Subject template of the auto-reply
    #[arg(long, value_name = "TEMPLATE")]
    auto_reply_subject: Option<String>,
    /// Read the auto-reply body template from this file
    #[arg(long, value_name = "FILE")]
    auto_reply_body_file: Option<PathBuf>,
    /// SMTP server replies leave through ("" removes it)
    #[arg(long, value_name = "NAME")]
    smtp: Option<String>,
    /// Save a copy of each sent reply in this IMAP folder: ACCOUNT:FOLDER ("" removes it)
    #[arg(long, value_name = "ACCOUNT:FOLDER")]
    sent_folder: Option<String>,
}

/// The fields of a user, as flags (used by `user add` and `user edit`).
#[derive(clap::Args, Debug, Default)]
pub struct UserFlags {
    /// Full name shown to the team
    #[arg(long)]
    name: Option<String>,
    /// Personal address for notifications
    #[arg(long)]
    email: Option<String>,
    /// admin (everything) or agent (the given mailboxes)
    #[arg(long, value_name = "admin|agent")]
    role: Option<String>,
    /// Mailbox the user may see (repeatable; replaces the list)
    #[arg(long = "mailbox", value_name = "NAME")]
    mailboxes: Vec<String>,
    /// Password (prefer --password-file: command lines are visible to other users)
    #[arg(long)]
    password: Option<String>,
    /// Read the password from the first line of this file
    #[arg(long, value_name = "FILE", conflicts_with = "password")]
    password_file: Option<PathBuf>,
    /// UI language: en, fr, or "" for the browser's
    #[arg(long)]
    language: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a user (login, password; --role admin for an administrator)
    Add {
        /// Login name (letters, digits, . - _ @ +)
        login: String,
        #[command(flatten)]
        flags: UserFlags,
    },
    /// Change a user (only the given fields change); a new password ends their sessions
    Edit {
        login: String,
        #[command(flatten)]
        flags: UserFlags,
    },
    /// Set a user's password (ends every session of the user)
    Passwd {
        login: String,
        /// The new password
        #[arg(long)]
        password: Option<String>,
        /// Read the new password from the first line of this file
        #[arg(long, value_name = "FILE", conflicts_with = "password")]
        password_file: Option<PathBuf>,
    },
    /// Disable a user: they cannot log in; their conversations stay
    Disable { login: String },
    /// Enable a disabled user again
    Enable { login: String },
    /// List the users
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum MailboxCmd {
    /// Add a mailbox
    Add {
        /// A short name, e.g. Support
        name: String,
        #[command(flatten)]
        flags: MailboxFlags,
    },
    /// Change a mailbox (only the given fields change)
    Edit {
        name: String,
        /// New name
        #[arg(long, value_name = "NAME")]
        rename: Option<String>,
        #[command(flatten)]
        flags: MailboxFlags,
    },
    /// List the mailboxes with their addresses
    List {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
}

/// The fields of an SMTP server, as flags (used by `smtp add` and `smtp edit`).
#[derive(clap::Args, Debug, Default)]
pub struct SmtpFlags {
    /// Server host name or IP address
    #[arg(long, value_name = "HOST")]
    host: Option<String>,
    /// Server port (default: 587 for starttls, 465 for tls, 25 for none)
    #[arg(long, value_name = "PORT")]
    port: Option<u32>,
    /// none, starttls or tls (default starttls)
    #[arg(long, value_name = "MODE")]
    security: Option<String>,
    /// Login method: none, plain or login (default plain)
    #[arg(long, value_name = "METHOD")]
    auth: Option<String>,
    /// Login name
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// Password (visible to other local users in the process list; prefer --password-file)
    #[arg(long, value_name = "PASSWORD", conflicts_with = "password_file")]
    password: Option<String>,
    /// Read the password from the first line of this file
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Name to send in EHLO (default: this machine's host name)
    #[arg(long, value_name = "NAME")]
    helo: Option<String>,
    /// Trust exactly this certificate (SHA-256 fingerprint) for a self-signed server; "" removes the pin
    #[arg(long, value_name = "SHA256")]
    pin_cert: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum SmtpCmd {
    /// Add an SMTP server
    Add {
        /// A short name, e.g. relay
        name: String,
        #[command(flatten)]
        flags: SmtpFlags,
    },
    /// Change an SMTP server (only the given fields change)
    Edit {
        name: String,
        /// New name
        #[arg(long, value_name = "NAME")]
        rename: Option<String>,
        #[command(flatten)]
        flags: SmtpFlags,
    },
    /// List the SMTP servers
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Remove an SMTP server no mailbox uses
    Remove { name: String },
    /// Send a real test message and show every step with the server's replies
    Test {
        name: String,
        /// Recipient of the test message
        #[arg(long, value_name = "ADDRESS")]
        to: String,
        /// Sender (default: the login name when it is an address)
        #[arg(long, value_name = "ADDRESS")]
        from: Option<String>,
    },
}

/// The fields of an account, as flags (used by `account add` and `account edit`).
#[derive(clap::Args, Debug, Default)]
pub struct AccountFlags {
    /// imap or pop3 (default imap)
    #[arg(long, value_name = "PROTO")]
    protocol: Option<String>,
    /// Server host name or IP address
    #[arg(long, value_name = "HOST")]
    host: Option<String>,
    /// Server port (default: 993/143 for IMAP, 995/110 for POP3, by security)
    #[arg(long, value_name = "PORT")]
    port: Option<u32>,
    /// none, starttls or tls (default tls)
    #[arg(long, value_name = "MODE")]
    security: Option<String>,
    /// Login name (Exchange/Microsoft 365 style DOMAIN\user\alias works as typed)
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// Password (visible to other local users in the process list; prefer --password-file)
    #[arg(long, value_name = "PASSWORD", conflicts_with = "password_file")]
    password: Option<String>,
    /// Read the password from the first line of this file
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// IMAP folder to read; repeat for several (default INBOX)
    #[arg(long = "folder", value_name = "FOLDER")]
    folders: Vec<String>,
    /// After a message is durably stored: keep (default), delete, or move:FOLDER (IMAP)
    #[arg(long, value_name = "WHAT")]
    after: Option<String>,
    /// Mailbox new conversations go to (created if missing; default Inbox)
    #[arg(long, value_name = "NAME")]
    mailbox: Option<String>,
    /// Import only mail that arrives from now on (existing mail is left alone)
    #[arg(long)]
    only_new: bool,
    /// Also import the mail already on the server (undoes --only-new)
    #[arg(long, conflicts_with = "only_new")]
    all_mail: bool,
    /// Trust exactly this certificate (SHA-256 fingerprint) for a self-signed server; "" removes the pin
    #[arg(long, value_name = "SHA256")]
    pin_cert: Option<String>,
    /// Poll interval in seconds when the server cannot push (IDLE), default 60
    #[arg(long, value_name = "SECS")]
    poll_secs: Option<u32>,
    /// Messages larger than this stay on the server and are reported (default 25 MiB)
    #[arg(long, value_name = "BYTES")]
    max_message_bytes: Option<u64>,
    /// address: new conversations go to the mailbox owning the address the mail was sent
    /// to (else --mailbox); mailbox: all into --mailbox (default address)
    #[arg(long, value_name = "HOW")]
    dispatch: Option<String>,
    /// Trust X-Postroom-* (X-OTOBO-*, X-OTRS-*) headers in this account's mail: yes or no
    /// (default no). Only for accounts that receive mail from your own systems.
    #[arg(long, value_name = "YES|NO", value_parser = parse_yes_no)]
    trusted: Option<bool>,
    /// How to log in: auto (SASL PLAIN when the server offers it and the password is not
    /// ASCII or an authorization identity is set, else LOGIN/USER+PASS), login, or plain
    #[arg(long, value_name = "METHOD")]
    login: Option<String>,
    /// SASL PLAIN authorization identity: log in as --user, work as this user (a shared
    /// mailbox); "" removes it
    #[arg(long, value_name = "USER")]
    authzid: Option<String>,
    /// valid, invalid or temporarily-invalid (only a valid account is fetched)
    #[arg(long, value_name = "VALIDITY")]
    validity: Option<String>,
    /// A note for the admins
    #[arg(long, value_name = "TEXT")]
    comment: Option<String>,
    /// yes: mail creates no new conversations; only replies to existing ones (subject tag
    /// or Message-ID reference) are accepted, other mail is kept and logged (see
    /// --refused). no (default): mail creates conversations
    #[arg(long, value_name = "YES|NO", value_parser = parse_yes_no)]
    no_new_conversations: Option<bool>,
    /// What happens to refused mail: drop (only the communication log, default) or answer
    /// (with --refused-subject and --refused-body)
    #[arg(long, value_name = "drop|answer")]
    refused: Option<String>,
    /// Subject of the answer to refused mail (a template like the auto-reply's: subject,
    /// customer_name, customer_address, mailbox_name, mailbox_address, account)
    #[arg(long, value_name = "TEMPLATE")]
    refused_subject: Option<String>,
    /// Body of the answer to refused mail (a template, as --refused-subject; \n: a line break)
    #[arg(long, value_name = "TEMPLATE")]
    refused_body: Option<String>,
    /// yes: unknown senders become customers, their domain the company (default no)
    #[arg(long, value_name = "YES|NO", value_parser = parse_yes_no)]
    create_customers: Option<bool>,
    /// User (login) new conversations are assigned to; they must see the mailbox; "" none
    #[arg(long, value_name = "LOGIN")]
    default_assignee: Option<String>,
    /// Priority of new conversations: low, normal (default), high or urgent
    #[arg(long, value_name = "PRIORITY")]
    default_priority: Option<String>,
    /// Tags of new conversations, comma-separated; "" removes them
    #[arg(long, value_name = "TAGS")]
    default_tags: Option<String>,
    /// yes: mail of the same sender and subject within one poll interval joins one
    /// conversation (default no)
    #[arg(long, value_name = "YES|NO", value_parser = parse_yes_no)]
    bundle: Option<bool>,
}

#[derive(Subcommand, Debug)]
pub enum AccountCmd {
    /// Add a mail account
    Add {
        /// A short name, e.g. support
        name: String,
        #[command(flatten)]
        flags: AccountFlags,
        /// Add it disabled (nothing is fetched until `account enable`)
        #[arg(long)]
        disabled: bool,
    },
    /// Change a mail account (only the given fields change)
    Edit {
        name: String,
        /// New name
        #[arg(long, value_name = "NAME")]
        rename: Option<String>,
        #[command(flatten)]
        flags: AccountFlags,
    },
    /// List the mail accounts
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Remove a mail account (its conversations stay)
    Remove { name: String },
    /// Start fetching from an account
    Enable { name: String },
    /// Stop fetching from an account (its settings stay)
    Disable { name: String },
    /// Connect to an account's server and show every step: DNS, TCP, TLS certificate,
    /// login, capabilities, folders with message counts (nothing is fetched or changed)
    Check { name: String },
}

/// Runs the parsed command line. `argv` is the command line as typed: while a service
/// runs on the data dir, the command is sent to it (see `control`) and runs there.
pub fn run(cli: Cli, argv: Vec<String>) -> Result<u8, AppError> {
    let data = cli.data.clone().unwrap_or_else(config::default_data_dir);
    if let Command::Serve {
        listen,
        https_listen,
        no_https,
        mdns_name,
        no_mdns,
    } = &cli.command
    {
        if !no_mdns && !crate::mdns::valid_name(mdns_name) {
            return Err(AppError::Usage(format!(
                "--mdns-name {mdns_name:?} is not a host name: use letters, digits and hyphens, e.g. postroom (or --no-mdns)"
            )));
        }
        let mdns = (!no_mdns).then_some(mdns_name.as_str());
        let https = (!no_https).then_some(https_listen.as_str());
        app::serve(&data, listen, https, mdns)?;
        return Ok(0);
    }
    let mut argv = argv;
    if cli.command.wants_stdin() && crate::control::service_running(&data) {
        // The service cannot read our stdin: send the body along.
        let body = body_text(None, None)?;
        argv.push("--body".into());
        argv.push(body);
    }
    if let Some(code) = crate::control::forward(&data, argv).map_err(AppError::Usage)? {
        return Ok(code);
    }
    let dir = open(&data)?;
    execute(&dir, cli.command, None)?;
    Ok(0)
}

/// Runs one command on an open data dir. `service` is the running service's fetch
/// context when the service executes the command for the control socket.
pub fn execute(dir: &DataDir, cmd: Command, service: Option<&Service>) -> Result<(), AppError> {
    match cmd {
        Command::Serve { .. } => Err(AppError::Usage(
            "postroom serve is already running on this data directory".into(),
        )),
        Command::Import {
            paths,
            mailbox,
            quiet,
        } => cmd_import(dir, &paths, mailbox.as_deref(), quiet),
        Command::Conversations {
            json,
            status,
            limit,
        } => cmd_conversations(dir, json, status.as_deref(), limit),
        Command::Conversation { id, json } => cmd_conversation(dir, id, json),
        Command::Raw { id } => cmd_raw(dir, id),
        Command::Log { limit, json } => cmd_log(dir, limit, json),
        Command::Settings { key, value } => cmd_settings(dir, key, value),
        Command::Account(cmd) => cmd_account(dir, cmd, service.map(|s| &s.fetch)),
        Command::Fetch { name } => cmd_fetch(dir, &name, service.map(|s| &s.fetch)),
        Command::Smtp(cmd) => cmd_smtp(dir, cmd),
        Command::Mailbox(cmd) => cmd_mailbox(dir, cmd),
        Command::User(cmd) => cmd_user(dir, cmd),
        Command::Reply {
            conv,
            body_file,
            body,
            from,
            to,
            cc,
            attach,
            quote,
            agent,
        } => {
            let body = body_text(body, body_file.as_deref())?;
            let mut attachments = Vec::new();
            for p in &attach {
                let bytes = std::fs::read(p).map_err(|e| {
                    AppError::Usage(format!("cannot read the attachment {}: {e}", p.display()))
                })?;
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "attachment".into());
                attachments.push(crate::compose::Attachment {
                    content_type: crate::compose::content_type_of(&name).to_owned(),
                    name,
                    bytes,
                });
            }
            let req = crate::outbox::ReplyRequest {
                conv: ConvId(conv),
                body,
                from,
                to,
                cc,
                attachments,
                quote,
                agent: agent.unwrap_or_default(),
                forward: false,
            };
            cmd_reply(dir, &req, service)
        }
        Command::Note {
            conv,
            body_file,
            body,
            agent,
        } => {
            let body = body_text(body, body_file.as_deref())?;
            let m = crate::outbox::add_note(
                &dir.store,
                &SystemClock,
                ConvId(conv),
                agent.as_deref().unwrap_or(""),
                &body,
            )
            .map_err(AppError::Outbox)?;
            out!("note {} added to conversation #{}", m.id, m.conv);
            Ok(())
        }
        Command::Outbox {
            send,
            retry_now,
            json,
        } => cmd_outbox(dir, send || retry_now, retry_now, json, service),
    }
}

/// The body of a reply or note: given as text, from a file, or from stdin.
fn body_text(body: Option<String>, file: Option<&std::path::Path>) -> Result<String, AppError> {
    let text = match (body, file) {
        (Some(b), _) => b,
        (None, Some(p)) => read_text("body", p)?,
        (None, None) => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| AppError::Usage(format!("cannot read the body from stdin: {e}")))?;
            s
        }
    };
    if text.trim().is_empty() {
        return Err(AppError::Usage(
            "the body is empty; give it with --body-file FILE or on stdin".into(),
        ));
    }
    Ok(text)
}

fn outbox_ctx(dir: &DataDir) -> Result<crate::outbox::SenderCtx, AppError> {
    Ok(crate::outbox::SenderCtx {
        store: dir.store.clone(),
        keys: std::sync::Arc::new(dir.keyring()?),
        clock: std::sync::Arc::new(SystemClock),
    })
}

fn cmd_reply(
    dir: &DataDir,
    req: &crate::outbox::ReplyRequest,
    service: Option<&Service>,
) -> Result<(), AppError> {
    let settings = dir.settings()?;
    let q = crate::outbox::queue_reply(&dir.store, &settings, &SystemClock, req)
        .map_err(AppError::Outbox)?;
    out!(
        "reply {} to conversation #{} queued: from {} to {}, subject {:?}, Message-ID <{}>",
        q.msg,
        q.conv,
        q.from,
        q.recipients.join(", "),
        q.subject,
        q.message_id
    );
    match service {
        Some(s) => {
            let _ = s.outbox.try_send(());
            out!("the running service sends it now (see postroom outbox)");
        }
        None => {
            let r = crate::outbox::send_one(&outbox_ctx(dir)?, q.outbox)?;
            let o = dir
                .store
                .read()?
                .outbox()?
                .into_iter()
                .find(|o| o.id == q.outbox);
            match o.map(|o| o.state) {
                Some(crate::model::OutboxState::Sent { reply, .. }) => {
                    out!("sent: the relay said {reply}")
                }
                Some(crate::model::OutboxState::Failed { reply, .. }) => {
                    return Err(AppError::Usage(format!("the reply was NOT sent: {reply}")));
                }
                _ => out!(
                    "not sent yet ({} waiting to retry); postroom serve keeps trying for 5 days",
                    r.retrying
                ),
            }
        }
    }
    Ok(())
}

fn outbox_state_words(o: &crate::model::OutboxRecord) -> String {
    use crate::model::OutboxState;
    match &o.state {
        OutboxState::Queued { due } => format!(
            "queued, attempt {} at {} UTC{}",
            o.attempts + 1,
            format_utc(due / 1000),
            if o.last_error.is_empty() {
                String::new()
            } else {
                format!(" (last error: {})", o.last_error)
            }
        ),
        OutboxState::Sent { at, reply } => {
            format!("sent {} UTC: {reply}", format_utc(at / 1000))
        }
        OutboxState::Failed { at, reply } => {
            format!("FAILED {} UTC: {reply}", format_utc(at / 1000))
        }
    }
}

fn cmd_outbox(
    dir: &DataDir,
    send: bool,
    retry_now: bool,
    json_out: bool,
    service: Option<&Service>,
) -> Result<(), AppError> {
    if retry_now {
        let now = crate::model::Clock::now_ms(&SystemClock);
        let n = dir.store.write(|tx| crate::outbox::retry_now(tx, now))?;
        out!("outbox: {n} waiting messages will be tried now");
    }
    if send && let Some(s) = service {
        // The service's sender does it (one sender at a time: no double delivery).
        let _ = s.outbox.try_send(());
        out!("outbox: the running service sends what is due now");
    } else if send {
        let r = crate::outbox::send_due(&outbox_ctx(dir)?)?;
        out!(
            "outbox: {} sent, {} waiting to retry, {} failed",
            r.sent,
            r.retrying,
            r.failed
        );
    }
    let list = dir.store.read()?.outbox()?;
    if json_out {
        print_json(&serde_json::Value::Array(
            list.iter()
                .map(|o| {
                    let (state, at, reply) = match &o.state {
                        crate::model::OutboxState::Queued { due } => ("queued", *due, ""),
                        crate::model::OutboxState::Sent { at, reply } => {
                            ("sent", *at, reply.as_str())
                        }
                        crate::model::OutboxState::Failed { at, reply } => {
                            ("failed", *at, reply.as_str())
                        }
                    };
                    json!({
                        "id": o.id, "message": o.msg, "conversation": o.conv, "raw": o.raw,
                        "to": o.rcpt_to, "mail_from": o.mail_from, "attempts": o.attempts,
                        "state": state, "at": format_rfc3339(at / 1000), "reply": reply,
                        "last_error": o.last_error,
                    })
                })
                .collect(),
        ));
        return Ok(());
    }
    if list.is_empty() && !send {
        out!("the outbox is empty");
    }
    for o in &list {
        out!(
            "{:<5} #{:<6} to {}: {}",
            o.id,
            o.conv.0,
            o.rcpt_to.join(", "),
            outbox_state_words(o)
        );
    }
    Ok(())
}

impl Command {
    /// Makes relative file names absolute against `cwd`: the service that runs a
    /// forwarded command has its own working directory.
    pub fn absolutize(&mut self, cwd: &std::path::Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = cwd.join(&*p);
            }
        };
        match self {
            Command::Import { paths, .. } => paths.iter_mut().for_each(abs),
            Command::Account(AccountCmd::Add { flags, .. } | AccountCmd::Edit { flags, .. }) => {
                if let Some(p) = flags.password_file.as_mut() {
                    abs(p);
                }
            }
            Command::Smtp(SmtpCmd::Add { flags, .. } | SmtpCmd::Edit { flags, .. }) => {
                if let Some(p) = flags.password_file.as_mut() {
                    abs(p);
                }
            }
            Command::Reply {
                body_file, attach, ..
            } => {
                body_file.iter_mut().for_each(abs);
                attach.iter_mut().for_each(abs);
            }
            Command::Note { body_file, .. } => body_file.iter_mut().for_each(abs),
            Command::User(UserCmd::Add { flags, .. } | UserCmd::Edit { flags, .. }) => {
                flags.password_file.iter_mut().for_each(abs)
            }
            Command::User(UserCmd::Passwd { password_file, .. }) => {
                password_file.iter_mut().for_each(abs)
            }
            Command::Mailbox(MailboxCmd::Add { flags, .. } | MailboxCmd::Edit { flags, .. }) => {
                for p in [&mut flags.signature_file, &mut flags.auto_reply_body_file]
                    .into_iter()
                    .flatten()
                {
                    abs(p);
                }
            }
            _ => {}
        }
    }
}

/// `--password` or the first line of `--password-file`.
fn password_flag(
    password: Option<String>,
    file: Option<&std::path::Path>,
) -> Result<Option<Secret>, AppError> {
    Ok(match (password, file) {
        (Some(p), _) => Some(Secret::new(p)),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                AppError::Usage(format!(
                    "cannot read the password file {}: {e}",
                    path.display()
                ))
            })?;
            Some(Secret::new(text.lines().next().unwrap_or("").to_owned()))
        }
        (None, None) => None,
    })
}

fn smtp_input(name: Option<String>, f: SmtpFlags) -> Result<SmtpInput, AppError> {
    Ok(SmtpInput {
        name,
        password: password_flag(f.password, f.password_file.as_deref())?,
        host: f.host,
        port: f.port,
        security: f.security,
        auth: f.auth,
        username: f.user,
        helo: f.helo,
        pinned_cert: f.pin_cert,
    })
}

fn smtp_json(s: &SmtpRecord, mailboxes: &[crate::model::MailboxRecord]) -> serde_json::Value {
    json!({
        "name": s.name,
        "host": s.host,
        "port": s.port,
        "security": s.security,
        "auth": s.auth,
        "user": s.username,
        "helo": s.helo,
        "pinned_cert": s.pinned_cert.map(|p| Fingerprint(p).to_string()),
        "mailboxes": mailboxes.iter().filter(|m| m.smtp == Some(s.id)).map(|m| m.name.clone()).collect::<Vec<_>>(),
        "last_test": s.last_test.as_ref().map(|(at, ok, summary)| json!({
            "at": format_rfc3339(at / 1000), "ok": ok, "summary": summary,
        })),
    })
}

fn cmd_smtp(dir: &DataDir, cmd: SmtpCmd) -> Result<(), AppError> {
    use crate::smtp::servers;
    let cfg = AppError::Smtp;
    match cmd {
        SmtpCmd::Add { name, flags } => {
            let keys = dir.keyring()?;
            let input = smtp_input(Some(name), flags)?;
            let s = dir
                .store
                .write(|tx| servers::add(tx, &keys, &input).map_err(cfg))?;
            out!(
                "added SMTP server {:?}: {}:{} ({}), login {}{}",
                s.name,
                s.host,
                s.port,
                s.security,
                s.auth.as_str(),
                if s.username.is_empty() {
                    String::new()
                } else {
                    format!(" as {}", s.username)
                }
            );
            out!(
                "test it with: postroom smtp test {} --to YOUR-ADDRESS",
                s.name
            );
        }
        SmtpCmd::Edit {
            name,
            rename,
            flags,
        } => {
            let keys = dir.keyring()?;
            let input = smtp_input(rename, flags)?;
            let s = dir
                .store
                .write(|tx| servers::edit(tx, &keys, &name, &input).map_err(cfg))?;
            out!(
                "changed SMTP server {:?}: {}:{} ({}), login {}",
                s.name,
                s.host,
                s.port,
                s.security,
                s.auth.as_str()
            );
        }
        SmtpCmd::List { json: json_out } => {
            let r = dir.store.read()?;
            let (list, mailboxes) = (r.smtp_servers()?, r.mailboxes()?);
            if json_out {
                print_json(&serde_json::Value::Array(
                    list.iter().map(|s| smtp_json(s, &mailboxes)).collect(),
                ));
                return Ok(());
            }
            if list.is_empty() {
                out!(
                    "no SMTP servers yet; add one with: postroom smtp add NAME --host HOST --user USER --password-file FILE"
                );
            }
            for s in &list {
                let test = match &s.last_test {
                    None => "never tested".to_owned(),
                    Some((at, ok, summary)) => format!(
                        "last test {} {}: {summary}",
                        format_utc(at / 1000),
                        if *ok { "passed" } else { "FAILED" }
                    ),
                };
                out!(
                    "{:<16} {}:{} {:<8} login {}{}  ({test})",
                    s.name,
                    s.host,
                    s.port,
                    s.security,
                    s.auth.as_str(),
                    if s.username.is_empty() {
                        String::new()
                    } else {
                        format!(" as {}", s.username)
                    }
                );
            }
        }
        SmtpCmd::Remove { name } => {
            let s = dir
                .store
                .write(|tx| servers::remove(tx, &name).map_err(cfg))?;
            out!("removed SMTP server {:?}", s.name);
        }
        SmtpCmd::Test { name, to, from } => cmd_smtp_test(dir, &name, &to, from.as_deref())?,
    }
    Ok(())
}

fn cmd_smtp_test(dir: &DataDir, name: &str, to: &str, from: Option<&str>) -> Result<(), AppError> {
    use crate::smtp::servers;
    let keys = dir.keyring()?;
    let server = dir
        .store
        .write(|tx| servers::find(tx, name).map_err(AppError::Smtp))?;
    let from = match from {
        Some(f) => f.to_owned(),
        None if server.username.contains('@') => server.username.clone(),
        None => {
            return Err(AppError::Usage(format!(
                "give the sender with --from ADDRESS (the login name {:?} is not an address)",
                server.username
            )));
        }
    };
    let password = servers::password(&keys, &server).map_err(AppError::Secret)?;
    let clock = SystemClock;
    let bytes = crate::compose::test_message(&from, to, &server.name, &clock)
        .map_err(|e| AppError::Usage(e.to_string()))?;
    out!(
        "testing SMTP server {:?}: {}:{} ({}), from {from} to {to}",
        server.name,
        server.host,
        server.port,
        server.security
    );
    let mut n = 0;
    let rcpts = [to.to_owned()];
    let msg = crate::smtp::Outgoing {
        mail_from: &from,
        rcpt_to: &rcpts,
        bytes: &bytes,
    };
    let result = crate::smtp::deliver(&server, password.as_ref(), &msg, &mut |s| {
        n += 1;
        out!(
            "{n}. {} {:<22} {}",
            if s.ok { "ok  " } else { "FAIL" },
            s.what,
            s.detail
        );
    });
    let now = crate::model::Clock::now_ms(&clock);
    let (ok, summary) = match &result {
        Ok(reply) => (true, format!("accepted: {reply}")),
        Err(e) => (false, e.to_string()),
    };
    let id = server.id;
    dir.store.write(|tx| {
        if let Some(mut s) = tx.smtp_servers()?.into_iter().find(|s| s.id == id) {
            s.last_test = Some((now, ok, summary.clone()));
            tx.put_smtp(&s)?;
        }
        Ok::<_, AppError>(())
    })?;
    match result {
        Ok(reply) => {
            out!("the server accepted the test message: {reply}");
            Ok(())
        }
        Err(e) => Err(AppError::Usage(format!(
            "the test message was not sent: {e}"
        ))),
    }
}

fn read_text(what: &str, path: &std::path::Path) -> Result<String, AppError> {
    std::fs::read_to_string(path).map_err(|e| {
        AppError::Usage(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    })
}

fn pairs(flag: &str, items: &[String]) -> Result<Vec<(String, String)>, AppError> {
    items
        .iter()
        .map(|i| {
            i.split_once('=')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| AppError::Usage(format!("{flag} {i:?}: write ADDRESS=VALUE")))
        })
        .collect()
}

fn mailbox_input(name: Option<String>, f: MailboxFlags) -> Result<MailboxInput, AppError> {
    let signature = match (f.signature, f.signature_file) {
        (Some(s), _) => Some(s),
        (None, Some(p)) => Some(read_text("signature", &p)?),
        (None, None) => None,
    };
    let auto_reply = match f
        .auto_reply
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => None,
        Some("on" | "yes" | "true") => Some(true),
        Some("off" | "no" | "false") => Some(false),
        Some(other) => {
            return Err(AppError::Usage(format!(
                "--auto-reply {other:?}: use on or off"
            )));
        }
    };
    Ok(MailboxInput {
        name,
        address: f.address,
        display_name: f.display_name,
        add_aliases: f.aliases,
        validity: pairs("--validity", &f.validity)?,
        comments: pairs("--comment", &f.comments)?,
        from_policy: f.from_policy,
        signature,
        auto_bcc: f.bcc,
        auto_reply,
        auto_reply_subject: f.auto_reply_subject,
        auto_reply_body: match f.auto_reply_body_file {
            Some(p) => Some(read_text("auto-reply body", &p)?),
            None => None,
        },
        smtp: f.smtp,
        sent_copy: f.sent_folder,
    })
}

fn mailbox_json(
    m: &crate::model::MailboxRecord,
    smtp: &[SmtpRecord],
    accounts: &[AccountRecord],
) -> serde_json::Value {
    json!({
        "id": m.id,
        "name": m.name,
        "address": m.address,
        "address_validity": m.address_validity,
        "address_comment": m.address_comment,
        "display_name": m.display_name,
        "aliases": m.aliases.iter().map(|a| json!({
            "address": a.address, "validity": a.validity, "comment": a.comment,
        })).collect::<Vec<_>>(),
        "from_policy": m.from_policy,
        "signature": m.signature,
        "bcc": m.auto_bcc,
        "auto_reply": m.auto_reply,
        "auto_reply_subject": m.auto_reply_subject,
        "auto_reply_body": m.auto_reply_body,
        "smtp": m.smtp.and_then(|id| smtp.iter().find(|s| s.id == id)).map(|s| s.name.clone()),
        "sent_folder": m.sent_copy.as_ref().map(|(a, f)| format!(
            "{}:{f}",
            accounts.iter().find(|x| x.id == *a).map(|x| x.name.as_str()).unwrap_or("?")
        )),
    })
}

fn user_input(f: UserFlags) -> Result<crate::users::UserInput, AppError> {
    Ok(crate::users::UserInput {
        login: None,
        name: f.name,
        email: f.email,
        role: f.role,
        mailboxes: (!f.mailboxes.is_empty()).then_some(f.mailboxes),
        password: password_flag(f.password, f.password_file.as_deref())?,
        disabled: None,
        language: f.language,
        signature: None,
    })
}

fn cmd_user(dir: &DataDir, cmd: UserCmd) -> Result<(), AppError> {
    use crate::users;
    let now = crate::model::Clock::now_secs(&SystemClock);
    let ue = AppError::User;
    let show = |u: &crate::model::UserRecord, names: &[crate::model::MailboxRecord]| {
        let boxes: Vec<&str> = names
            .iter()
            .filter(|m| u.mailboxes.contains(&m.id))
            .map(|m| m.name.as_str())
            .collect();
        format!(
            "{} ({}, {}){}{}",
            u.login,
            u.name,
            u.role.as_str(),
            if u.is_admin() {
                ", every mailbox".to_owned()
            } else if boxes.is_empty() {
                ", no mailbox yet".to_owned()
            } else {
                format!(", mailboxes: {}", boxes.join(", "))
            },
            if u.disabled { ", DISABLED" } else { "" }
        )
    };
    let edit =
        |login: &str, input: users::UserInput| -> Result<crate::model::UserRecord, AppError> {
            dir.store
                .write(|tx| users::edit(tx, login, &input, now).map_err(ue))
        };
    match cmd {
        UserCmd::Add { login, flags } => {
            let mut input = user_input(flags)?;
            input.login = Some(login);
            if input.password.is_none() {
                return Err(AppError::Usage(
                    "give the new user a password with --password-file FILE (or --password)".into(),
                ));
            }
            let u = dir
                .store
                .write(|tx| users::add(tx, &input, now).map_err(ue))?;
            out!("added user {}", show(&u, &dir.store.read()?.mailboxes()?));
        }
        UserCmd::Edit { login, flags } => {
            let u = edit(&login, user_input(flags)?)?;
            out!("changed user {}", show(&u, &dir.store.read()?.mailboxes()?));
        }
        UserCmd::Passwd {
            login,
            password,
            password_file,
        } => {
            let Some(pw) = password_flag(password, password_file.as_deref())? else {
                return Err(AppError::Usage(
                    "give the new password with --password-file FILE (or --password)".into(),
                ));
            };
            let input = users::UserInput {
                password: Some(pw),
                ..Default::default()
            };
            let u = edit(&login, input)?;
            out!("password of {} changed; their sessions were ended", u.login);
        }
        UserCmd::Disable { login } => {
            let u = edit(
                &login,
                users::UserInput {
                    disabled: Some(true),
                    ..Default::default()
                },
            )?;
            out!("user {} disabled; their sessions were ended", u.login);
        }
        UserCmd::Enable { login } => {
            let u = edit(
                &login,
                users::UserInput {
                    disabled: Some(false),
                    ..Default::default()
                },
            )?;
            out!("user {} enabled", u.login);
        }
        UserCmd::List { json: json_out } => {
            let r = dir.store.read()?;
            let (list, boxes) = (r.users()?, r.mailboxes()?);
            if json_out {
                print_json(&serde_json::Value::Array(
                    list.iter()
                        .map(|u| {
                            serde_json::json!({
                                "id": u.id.0, "login": u.login, "name": u.name, "email": u.email,
                                "role": u.role.as_str(), "disabled": u.disabled,
                                "mailboxes": boxes.iter().filter(|m| u.mailboxes.contains(&m.id)).map(|m| m.name.clone()).collect::<Vec<_>>(),
                            })
                        })
                        .collect(),
                ));
                return Ok(());
            }
            if list.is_empty() {
                out!(
                    "no users yet: `postroom serve` prints a setup code for the first administrator, or use `postroom user add LOGIN --role admin --password-file FILE`"
                );
            }
            for u in &list {
                out!("{:<4} {}", u.id.0, show(u, &boxes));
            }
        }
    }
    Ok(())
}

fn cmd_mailbox(dir: &DataDir, cmd: MailboxCmd) -> Result<(), AppError> {
    use crate::mailboxes;
    let mb = AppError::Mailbox;
    let show = |m: &crate::model::MailboxRecord| {
        let addrs: Vec<String> = m
            .addresses()
            .iter()
            .map(|(a, v)| match v {
                crate::model::Validity::Valid => (*a).to_owned(),
                other => format!("{a} ({})", other.as_str()),
            })
            .collect();
        format!(
            "{:?}: {}{}",
            m.name,
            if addrs.is_empty() {
                "no address yet".to_owned()
            } else {
                addrs.join(", ")
            },
            if m.auto_reply { ", auto-reply on" } else { "" }
        )
    };
    match cmd {
        MailboxCmd::Add { name, flags } => {
            let input = mailbox_input(Some(name), flags)?;
            let m = dir
                .store
                .write(|tx| mailboxes::add(tx, &input).map_err(mb))?;
            out!("added mailbox {}", show(&m));
        }
        MailboxCmd::Edit {
            name,
            rename,
            flags,
        } => {
            let input = mailbox_input(rename, flags)?;
            let m = dir
                .store
                .write(|tx| mailboxes::edit(tx, &name, &input).map_err(mb))?;
            out!("changed mailbox {}", show(&m));
        }
        MailboxCmd::List { json: json_out } => {
            let r = dir.store.read()?;
            let (list, smtp, accts) = (r.mailboxes()?, r.smtp_servers()?, r.accounts()?);
            if json_out {
                print_json(&serde_json::Value::Array(
                    list.iter()
                        .map(|m| mailbox_json(m, &smtp, &accts))
                        .collect(),
                ));
                return Ok(());
            }
            for m in &list {
                let via = m
                    .smtp
                    .and_then(|id| smtp.iter().find(|s| s.id == id))
                    .map(|s| format!(", sends through {}", s.name))
                    .unwrap_or_else(|| ", no SMTP server (cannot reply yet)".into());
                out!("{:<4} {}{via}", m.id.0, show(m));
            }
        }
    }
    Ok(())
}

fn account_input(
    dir: &DataDir,
    name: Option<String>,
    f: AccountFlags,
) -> Result<AccountInput, AppError> {
    let password = password_flag(f.password, f.password_file.as_deref())?;
    let mailbox = match f.mailbox {
        Some(m) => Some(mailbox_by_name(dir, Some(&m))?),
        None => None,
    };
    Ok(AccountInput {
        name,
        protocol: f.protocol,
        host: f.host,
        port: f.port,
        security: f.security,
        username: f.user,
        password,
        folders: if f.folders.is_empty() {
            None
        } else {
            Some(f.folders)
        },
        after: f.after,
        mailbox,
        enabled: None,
        only_new: if f.only_new {
            Some(true)
        } else if f.all_mail {
            Some(false)
        } else {
            None
        },
        pinned_cert: f.pin_cert,
        poll_secs: f.poll_secs,
        max_message_bytes: f.max_message_bytes,
        dispatch: f.dispatch,
        trusted: f.trusted,
        login: f.login,
        authzid: f.authzid,
        validity: f.validity,
        comment: f.comment,
        creation: crate::creation::CreationInput {
            no_new: f.no_new_conversations,
            refused: f.refused,
            refused_subject: f.refused_subject,
            refused_body: f.refused_body.map(|b| b.replace("\\n", "\n")),
            create_customers: f.create_customers,
            default_assignee: f.default_assignee,
            default_priority: f.default_priority,
            default_tags: f.default_tags,
            bundle: f.bundle,
        },
    })
}

fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("{s:?} is neither yes nor no")),
    }
}

fn account_json(a: &AccountRecord, mailboxes: &[crate::model::MailboxRecord]) -> serde_json::Value {
    json!({
        "name": a.name,
        "protocol": a.protocol,
        "host": a.host,
        "port": a.port,
        "security": a.security,
        "user": a.username,
        "folders": a.folders,
        "after": a.after.to_string(),
        "mailbox": mailboxes.iter().find(|m| m.id == a.mailbox).map(|m| m.name.clone()),
        "enabled": a.enabled,
        "only_new": a.only_new,
        "pinned_cert": a.pinned_cert.map(|p| Fingerprint(p).to_string()),
        "poll_secs": a.poll_secs,
        "max_message_bytes": a.max_message_bytes,
        "dispatch": if a.dispatch_by_address { "address" } else { "mailbox" },
        "trusted": a.trusted,
        "login": a.login,
        "authzid": a.authzid,
        "validity": a.validity,
        "comment": a.comment,
        "no_new_conversations": a.creation.no_new,
        "refused": if a.creation.answer_refused { "answer" } else { "drop" },
        "refused_subject": a.creation.refused_subject,
        "refused_body": a.creation.refused_body,
        "create_customers": a.creation.create_customers,
        "default_assignee": a.creation.default_assignee.map(|u| u.0),
        "default_priority": a.creation.default_priority,
        "default_tags": a.creation.default_tags,
        "bundle": a.creation.bundle,
    })
}

fn cmd_account(dir: &DataDir, cmd: AccountCmd, service: Option<&FetchCtx>) -> Result<(), AppError> {
    match cmd {
        AccountCmd::Add {
            name,
            flags,
            disabled,
        } => {
            let keys = dir.keyring()?;
            let mut input = account_input(dir, Some(name), flags)?;
            input.enabled = Some(!disabled);
            let a = dir
                .store
                .write(|tx| accounts::add(tx, &keys, &input).map_err(AppError::Account))?;
            out!(
                "added account {:?}: {} {}:{} ({}), user {}, folders {}, after fetch: {}{}",
                a.name,
                a.protocol.as_str(),
                a.host,
                a.port,
                a.security,
                a.username,
                a.folders.join(", "),
                a.after,
                if a.enabled { "" } else { " (disabled)" }
            );
            out!("check it with: postroom account check {}", a.name);
        }
        AccountCmd::Edit {
            name,
            rename,
            flags,
        } => {
            let keys = dir.keyring()?;
            let input = account_input(dir, rename, flags)?;
            let a = dir
                .store
                .write(|tx| accounts::edit(tx, &keys, &name, &input).map_err(AppError::Account))?;
            out!("changed account {:?}", a.name);
        }
        AccountCmd::List { json: json_out } => {
            let r = dir.store.read()?;
            let (list, mailboxes) = (r.accounts()?, r.mailboxes()?);
            if json_out {
                print_json(&serde_json::Value::Array(
                    list.iter().map(|a| account_json(a, &mailboxes)).collect(),
                ));
                return Ok(());
            }
            if list.is_empty() {
                out!(
                    "no accounts yet; add one with: postroom account add NAME --host HOST --user USER --password-file FILE"
                );
            }
            for a in &list {
                let taken: u64 = a
                    .folders
                    .iter()
                    .map(|f| r.taken_count(a.id, f).unwrap_or(0))
                    .sum();
                out!(
                    "{:<16} {:<4} {}:{} {:<8} user {}  folders {}  after {}  {}  ({} messages remembered)",
                    a.name,
                    a.protocol.as_str(),
                    a.host,
                    a.port,
                    a.security,
                    a.username,
                    a.folders.join(","),
                    a.after,
                    match (a.enabled, a.validity) {
                        (false, _) => "disabled",
                        (true, crate::model::Validity::Valid) => "enabled",
                        (true, crate::model::Validity::Invalid) =>
                            "enabled but invalid (not fetched)",
                        (true, crate::model::Validity::TemporarilyInvalid) => {
                            "enabled but temporarily invalid (not fetched)"
                        }
                    },
                    taken
                );
                let login = match a.creation.default_assignee {
                    Some(u) => r.user(u)?.map(|u| u.login),
                    None => None,
                };
                if let Some(words) = crate::creation::describe(&a.creation, login.as_deref()) {
                    out!("{:<16} creating conversations: {words}", "");
                }
                if let Some(state) =
                    service.and_then(|ctx| ctx.states.lock().ok()?.get(&a.name).cloned())
                {
                    out!("{:<16} now: {state}", "");
                }
            }
        }
        AccountCmd::Remove { name } => {
            let a = dir
                .store
                .write(|tx| accounts::remove(tx, &name).map_err(AppError::Account))?;
            out!(
                "removed account {:?}; the conversations it brought in stay",
                a.name
            );
        }
        AccountCmd::Check { name } => {
            let acct = dir
                .store
                .read()?
                .accounts()?
                .into_iter()
                .find(|a| a.name.eq_ignore_ascii_case(&name))
                .ok_or_else(|| AppError::Account(accounts::AccountError::NotFound(name.clone())))?;
            let ctx = dir.fetch_ctx(crate::pipeline::Waker::detached())?;
            out!(
                "checking account {:?}: {} {}:{} ({})",
                acct.name,
                acct.protocol.as_str(),
                acct.host,
                acct.port,
                acct.security
            );
            let mut n = 0;
            let ok = smol::block_on(crate::fetch::check::check(&ctx, &acct, &mut |s| {
                n += 1;
                out!(
                    "{n}. {} {:<12} {} ({} ms)",
                    if s.ok { "ok  " } else { "FAIL" },
                    s.name,
                    s.detail,
                    s.millis
                );
            }));
            if !ok {
                return Err(AppError::Usage(format!(
                    "account {:?} does not work yet; see the failed step above",
                    acct.name
                )));
            }
            out!("account {:?} works", acct.name);
        }
        AccountCmd::Enable { name } => set_enabled(dir, &name, true)?,
        AccountCmd::Disable { name } => set_enabled(dir, &name, false)?,
    }
    Ok(())
}

fn set_enabled(dir: &DataDir, name: &str, on: bool) -> Result<(), AppError> {
    let keys = dir.keyring()?;
    let input = AccountInput {
        enabled: Some(on),
        ..AccountInput::default()
    };
    let a = dir
        .store
        .write(|tx| accounts::edit(tx, &keys, name, &input).map_err(AppError::Account))?;
    out!(
        "account {:?} {}",
        a.name,
        if on { "enabled" } else { "disabled" }
    );
    Ok(())
}

fn cmd_fetch(dir: &DataDir, name: &str, service: Option<&FetchCtx>) -> Result<(), AppError> {
    let acct = dir
        .store
        .read()?
        .accounts()?
        .into_iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| AppError::Account(accounts::AccountError::NotFound(name.to_owned())))?;
    let report_pass = |report: &crate::fetch::PassReport| {
        out!(
            "account {:?}: {} new messages stored, {} already stored, {} removed on the server, {} left there (too large)",
            acct.name,
            report.stored,
            report.same_bytes,
            report.removed,
            report.oversize
        );
        for n in &report.notes {
            out!("  note: {n}");
        }
    };
    if let Some(ctx) = service {
        // Inside the service: its pipeline worker files the mail (the caller stopped the
        // account's own task for the length of this pass).
        let report = smol::block_on(crate::fetch::pass(ctx, &acct))
            .map_err(|e| AppError::Fetch(Box::new(e)))?;
        report_pass(&report);
        out!("  the running service files them into conversations now (postroom conversations)");
        return Ok(());
    }
    // The pipeline works alongside the download, as in `serve`.
    let (waker, worker) =
        crate::pipeline::spawn_worker(dir.store.clone(), std::sync::Arc::new(SystemClock));
    let ctx = dir.fetch_ctx(waker)?;
    let result = smol::block_on(crate::fetch::pass(&ctx, &acct));
    drop(ctx);
    let mut s = worker.join().unwrap_or_default();
    let report = result.map_err(|e| AppError::Fetch(Box::new(e)))?;
    let settings = dir.settings()?;
    s.add(&crate::pipeline::process_pending(
        &dir.store,
        &settings,
        &SystemClock,
    )?);
    report_pass(&report);
    out!(
        "  {} new conversations, {} messages joined existing ones",
        s.new_conversations,
        s.joined
    );
    Ok(())
}

fn open(data: &std::path::Path) -> Result<DataDir, AppError> {
    DataDir::open(data, &SystemClock)
}

fn mailbox_by_name(dir: &DataDir, name: Option<&str>) -> Result<MailboxId, AppError> {
    let Some(name) = name else {
        return Ok(MailboxId(1));
    };
    let name = name.trim();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(AppError::Usage(format!(
            "mailbox name {name:?} is not usable; give a name such as Support"
        )));
    }
    dir.store.write(|tx| {
        if let Some(m) = tx
            .mailboxes()?
            .into_iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
        {
            return Ok::<_, AppError>(m.id);
        }
        let id = MailboxId(tx.next_id("mailbox")?);
        tx.put_mailbox(&crate::model::MailboxRecord::named(id, name))?;
        Ok(id)
    })
}

fn cmd_import(
    dir: &DataDir,
    paths: &[PathBuf],
    mailbox: Option<&str>,
    quiet: bool,
) -> Result<(), AppError> {
    let mailbox = mailbox_by_name(dir, mailbox)?;
    let settings = dir.settings()?;
    let started = Instant::now();
    let tty = !quiet && !crate::control::captured() && std::io::stderr().is_terminal();
    let mut last_draw = Instant::now();
    let mut progress = |r: &ImportReport| {
        if tty && (last_draw.elapsed().as_millis() >= 100 || r.bytes_done == r.total_bytes) {
            last_draw = Instant::now();
            draw_progress(r, started);
        }
    };
    let report = import::import(
        &dir.store,
        paths,
        mailbox,
        &settings,
        &SystemClock,
        &mut progress,
    )?;
    if tty {
        err!("");
    }
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let p = &report.pipeline;
    out!(
        "imported {} messages from {} files in {:.1} s ({:.0} messages/s)",
        report.messages,
        report.files,
        secs,
        report.messages as f64 / secs
    );
    out!(
        "  {} stored, {} duplicates ({} identical bytes, {} same Message-ID), {} with warnings",
        report.stored,
        report.duplicates(),
        report.same_bytes,
        p.duplicates,
        p.with_warnings
    );
    out!(
        "  {} new conversations, {} messages joined existing ones, {} conversations merged",
        p.new_conversations,
        p.joined,
        p.merged_conversations
    );
    if p.with_warnings > 0 {
        out!("  see the warnings with: postroom log");
    }
    if !report.failed.is_empty() {
        for f in &report.failed {
            err!("  not imported: {f}");
        }
        return Err(AppError::Usage(format!(
            "{} of {} files could not be read (listed above); fix them and run the same import again, nothing is imported twice",
            report.failed.len(),
            report.files
        )));
    }
    Ok(())
}

fn draw_progress(r: &ImportReport, started: Instant) {
    let frac = if r.total_bytes == 0 {
        1.0
    } else {
        r.bytes_done as f64 / r.total_bytes as f64
    };
    let width = 30;
    let filled = ((frac * width as f64) as usize).min(width);
    let rate = r.messages as f64 / started.elapsed().as_secs_f64().max(0.001);
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r[{}{}] {:>3.0}%  {} messages  {:.0}/{:.0} MB  {:.0} msg/s ",
        "#".repeat(filled),
        ".".repeat(width - filled),
        frac * 100.0,
        r.messages,
        r.bytes_done as f64 / 1e6,
        r.total_bytes as f64 / 1e6,
        rate
    );
    let _ = err.flush();
}

fn conv_json(c: &ConversationRecord) -> serde_json::Value {
    json!({
        "id": c.id,
        "status": c.status,
        "subject": c.subject,
        "customer": c.customer,
        "mailbox": c.mailbox.0,
        "messages": c.message_count,
        "created": format_rfc3339(c.created),
        "last_activity": format_rfc3339(c.last_activity),
        "merged_into": c.merged_into,
    })
}

fn msg_json(m: &MessageRecord) -> serde_json::Value {
    json!({
        "id": m.id,
        "direction": m.direction,
        "message_id": m.message_id,
        "date": format_rfc3339(m.date),
        "from": m.from,
        "to": m.to,
        "cc": m.cc,
        "subject": m.subject,
        "flags": m.flags.names(),
        "attachments": m.attachments,
        "preview": m.preview,
        "warnings": m.warnings,
        "raw": (m.raw.0 != 0).then_some(m.raw),
        "also_raw": m.also_raw,
    })
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn print_json(v: &serde_json::Value) {
    out!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn cmd_conversations(
    dir: &DataDir,
    json_out: bool,
    status: Option<&str>,
    limit: usize,
) -> Result<(), AppError> {
    let filter = match status {
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            AppError::Usage(format!(
                "unknown status {s:?}; use one of active, pending, closed, spam, merged"
            ))
        })?),
        None => None,
    };
    let mut convs: Vec<ConversationRecord> = dir
        .store
        .read()?
        .conversations()?
        .into_iter()
        .filter(|c| match filter {
            Some(f) => c.status == f,
            None => c.status != Status::Merged,
        })
        .collect();
    convs.sort_by(|a, b| b.last_activity.cmp(&a.last_activity).then(b.id.cmp(&a.id)));
    let total = convs.len();
    if limit > 0 {
        convs.truncate(limit);
    }
    if json_out {
        print_json(&serde_json::Value::Array(
            convs.iter().map(conv_json).collect(),
        ));
        return Ok(());
    }
    out!(
        "{:>6}  {:<7}  {:<44}  {:<28}  {:>4}  LAST ACTIVITY (UTC)",
        "ID",
        "STATUS",
        "SUBJECT",
        "CUSTOMER",
        "MSGS"
    );
    for c in &convs {
        let customer = c
            .customer
            .as_ref()
            .map(|a| {
                if a.email.is_empty() {
                    a.name.clone()
                } else {
                    a.email.clone()
                }
            })
            .unwrap_or_default();
        out!(
            "{:>6}  {:<7}  {:<44}  {:<28}  {:>4}  {}",
            c.id,
            c.status,
            clip(&c.subject, 44),
            clip(&customer, 28),
            c.message_count,
            format_utc(c.last_activity)
        );
    }
    if total > convs.len() {
        out!("({} of {total} shown; --limit 0 shows all)", convs.len());
    }
    Ok(())
}

fn cmd_conversation(dir: &DataDir, id: u64, json_out: bool) -> Result<(), AppError> {
    let r = dir.store.read()?;
    let mut conv = r.conversation(ConvId(id))?.ok_or_else(|| {
        AppError::Usage(format!(
            "there is no conversation {id}; list them with: postroom conversations"
        ))
    })?;
    let mut hops = 0;
    while let (Status::Merged, Some(next), true) = (conv.status, conv.merged_into, hops < 64) {
        err!(
            "conversation {} was merged into {next}; showing {next}",
            conv.id
        );
        conv = r
            .conversation(next)?
            .ok_or_else(|| AppError::Usage(format!("conversation {next} is missing")))?;
        hops += 1;
    }
    let msgs = r.conversation_messages(conv.id)?;
    let outbox = r.outbox()?;
    let sending = |m: &MessageRecord| outbox.iter().find(|o| o.msg == m.id);
    if json_out {
        let mut v = conv_json(&conv);
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "thread".into(),
                serde_json::Value::Array(
                    msgs.iter()
                        .map(|m| {
                            let mut j = msg_json(m);
                            if let (Some(ob), Some(obj)) = (sending(m), j.as_object_mut()) {
                                obj.insert("outbox".into(), json!(outbox_state_words(ob)));
                            }
                            j
                        })
                        .collect(),
                ),
            );
        }
        print_json(&v);
        return Ok(());
    }
    out!("#{} {}", conv.id, conv.subject);
    out!(
        "status {}, {} messages, customer {}, last activity {} UTC",
        conv.status,
        conv.message_count,
        conv.customer
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into()),
        format_utc(conv.last_activity)
    );
    for m in &msgs {
        out!("");
        let arrow = match m.direction {
            Direction::In => "<-",
            Direction::Out => "->",
            Direction::Note => "##",
        };
        let flags = m.flags.names();
        out!(
            "{arrow} message {} {}  {}{}",
            m.id,
            format_utc(m.date),
            m.from
                .as_ref()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "(no sender)".into()),
            if flags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", flags.join(", "))
            }
        );
        out!("   Subject: {}", m.subject);
        if let Some(mid) = &m.message_id {
            out!("   Message-ID: <{mid}>");
        }
        if m.attachments > 0 {
            out!("   {} attachment(s)", m.attachments);
        }
        if !m.preview.is_empty() {
            out!("   {}", m.preview);
        }
        for w in &m.warnings {
            out!("   warning: {w}");
        }
        if let Some(o) = sending(m) {
            out!("   outbox: {}", outbox_state_words(o));
        }
        if m.raw.0 != 0 {
            let also: Vec<String> = m.also_raw.iter().map(|r| r.to_string()).collect();
            out!(
                "   raw {}{} (postroom raw {})",
                m.raw,
                if also.is_empty() {
                    String::new()
                } else {
                    format!(", also delivered as raw {}", also.join(", "))
                },
                m.raw
            );
        }
    }
    Ok(())
}

fn cmd_raw(dir: &DataDir, id: u64) -> Result<(), AppError> {
    let bytes = dir
        .store
        .read()?
        .raw_bytes(RawId(id))?
        .ok_or_else(|| AppError::Usage(format!("there is no raw message {id}")))?;
    crate::control::emit(crate::control::Stream::Stdout, &bytes);
    Ok(())
}

fn cmd_log(dir: &DataDir, limit: usize, json_out: bool) -> Result<(), AppError> {
    let entries = dir
        .store
        .read()?
        .log(if limit == 0 { usize::MAX } else { limit })?;
    if json_out {
        let v: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                json!({
                    "at_ms": e.at,
                    "level": e.level,
                    "component": e.component,
                    "raw": e.raw,
                    "conversation": e.conv,
                    "text": e.text,
                })
            })
            .collect();
        print_json(&serde_json::Value::Array(v));
        return Ok(());
    }
    for e in entries {
        out!(
            "{} {:<5} {:<9} {}",
            format_utc(e.at.div_euclid(1000)),
            e.level.as_str(),
            e.component,
            e.text
        );
    }
    Ok(())
}

fn cmd_settings(dir: &DataDir, key: Option<String>, value: Option<String>) -> Result<(), AppError> {
    match (key, value) {
        (None, _) => {
            let r = dir.store.read()?;
            for def in config::SETTINGS {
                let v = r.setting(def.key)?;
                out!(
                    "{} = {:?}{}",
                    def.key,
                    v.as_deref().unwrap_or(def.default),
                    if v.is_none() { " (default)" } else { "" }
                );
                out!("    {}", def.help);
            }
        }
        (Some(k), None) => {
            let def = config::setting_def(&k)?;
            let v = dir.store.read()?.setting(&k)?;
            out!("{}", v.as_deref().unwrap_or(def.default));
        }
        (Some(k), Some(v)) => {
            dir.store
                .write(|tx| config::set(tx, &k, &v).map_err(AppError::from))?;
            out!("{k} = {v:?}");
        }
    }
    Ok(())
}
