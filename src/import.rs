//! `postroom import`: mail files from disk into the raw store, then through the pipeline.
//!
//! Owns: finding messages in `.eml` files, directories of them, mbox files (mboxrd
//! unescaping of `>From `) and Maildirs (`cur/` and `new/`), batching them into
//! intake commits, and the progress/summary figures.
//! Must not: parse MIME or decide threading (the pipeline does), or change the files.

use crate::config::Settings;
use crate::model::{Clock, MailboxId};
use crate::pipeline::{self, Summary};
use crate::store::{NewRaw, RawOutcome, Store, StoreError, content_hash};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Messages per intake commit.
const BATCH_ITEMS: usize = 256;
/// Bytes per intake commit: keeps memory flat and one fsync per batch.
const BATCH_BYTES: usize = 8 << 20;

/// Why an import could not run or a file could not be read.
#[derive(Debug)]
pub enum ImportError {
    NotFound(PathBuf),
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Store(StoreError),
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::NotFound(p) => write!(
                f,
                "{} does not exist; give an .eml file, an mbox file, a Maildir or a directory of .eml files",
                p.display()
            ),
            ImportError::Read { path, source } => write!(
                f,
                "could not read {}: {source}. Check that the file is readable by this user",
                path.display()
            ),
            ImportError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ImportError {}

impl From<StoreError> for ImportError {
    fn from(e: StoreError) -> Self {
        ImportError::Store(e)
    }
}

/// How a file holds mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// One message per file (`.eml`, a Maildir entry).
    Message,
    /// Many messages separated by `From ` lines.
    Mbox,
}

/// One file to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub path: PathBuf,
    pub kind: FileKind,
    pub size: u64,
}

fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() && dir.join("new").is_dir()
}

fn sniff_mbox(path: &Path) -> bool {
    let mut head = [0u8; 5];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|_| &head == b"From ")
        .unwrap_or(false)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let rd = std::fs::read_dir(dir).map_err(|source| ImportError::Read {
        path: dir.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|source| ImportError::Read {
            path: dir.to_owned(),
            source,
        })?;
        out.push(e.path());
    }
    out.sort();
    Ok(out)
}

fn push_file(out: &mut Vec<SourceFile>, path: PathBuf, kind: FileKind) {
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    out.push(SourceFile { path, kind, size });
}

/// Lists every file to read under `path`, in a stable order.
pub fn plan(path: &Path) -> Result<Vec<SourceFile>, ImportError> {
    let meta = std::fs::metadata(path).map_err(|_| ImportError::NotFound(path.to_owned()))?;
    let mut out = Vec::new();
    if meta.is_file() {
        let kind = if sniff_mbox(path) {
            FileKind::Mbox
        } else {
            FileKind::Message
        };
        push_file(&mut out, path.to_owned(), kind);
        return Ok(out);
    }
    walk(path, &mut out, 0)?;
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<SourceFile>, depth: u32) -> Result<(), ImportError> {
    if depth > 16 {
        return Ok(());
    }
    if is_maildir(dir) {
        // Maildir: messages in cur/ and new/; tmp/ holds half-written files.
        for sub in ["cur", "new"] {
            for p in sorted_entries(&dir.join(sub))? {
                if p.is_file() {
                    push_file(out, p, FileKind::Message);
                }
            }
        }
        // Maildir++ subfolders (.Sent, .Archive, ...) sit beside cur/new/tmp.
        for p in sorted_entries(dir)? {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') && p.is_dir() && is_maildir(&p) {
                walk(&p, out, depth + 1)?;
            }
        }
        return Ok(());
    }
    for p in sorted_entries(dir)? {
        if p.is_dir() {
            walk(&p, out, depth + 1)?;
            continue;
        }
        let ext = p
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("eml") => push_file(out, p, FileKind::Message),
            Some("mbox") | Some("mbx") => push_file(out, p, FileKind::Mbox),
            None if sniff_mbox(&p) => push_file(out, p, FileKind::Mbox),
            _ => {}
        }
    }
    Ok(())
}

/// Splits an mbox stream into messages; calls `f(index, bytes)` for each, index from 1.
/// Separator lines are `From ` at the start of the file or after an empty line; quoted
/// `>From ` lines (any number of `>`) lose one `>` (mboxrd).
pub fn split_mbox(
    reader: impl Read,
    mut f: impl FnMut(u64, Vec<u8>) -> Result<(), ImportError>,
    path: &Path,
) -> Result<(), ImportError> {
    let mut r = BufReader::with_capacity(64 << 10, reader);
    let mut line = Vec::new();
    let mut msg: Vec<u8> = Vec::new();
    let mut in_msg = false;
    let mut prev_blank = true;
    let mut index = 0u64;
    let io = |source| ImportError::Read {
        path: path.to_owned(),
        source,
    };
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).map_err(io)?;
        if n == 0 {
            break;
        }
        if line.starts_with(b"From ") && prev_blank {
            if in_msg {
                index += 1;
                f(index, finish_mbox_message(std::mem::take(&mut msg)))?;
            }
            in_msg = true;
            prev_blank = false;
            continue;
        }
        prev_blank = line == b"\n" || line == b"\r\n";
        if !in_msg {
            // Bytes before the first From_ line: not an mbox after all; keep them as a message.
            in_msg = true;
        }
        let quoted = line.iter().take_while(|b| **b == b'>').count();
        if quoted > 0
            && line
                .get(quoted..)
                .is_some_and(|rest| rest.starts_with(b"From "))
        {
            msg.extend_from_slice(line.get(1..).unwrap_or(&[]));
        } else {
            msg.extend_from_slice(&line);
        }
    }
    if in_msg && !msg.is_empty() {
        index += 1;
        f(index, finish_mbox_message(msg))?;
    }
    Ok(())
}

/// Drops the blank line that separates a message from the next From_ line.
fn finish_mbox_message(mut msg: Vec<u8>) -> Vec<u8> {
    if msg.ends_with(b"\r\n\r\n") {
        msg.truncate(msg.len() - 2);
    } else if msg.ends_with(b"\n\n") {
        msg.truncate(msg.len() - 1);
    }
    msg
}

/// Running figures, for the progress bar and the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub files: u64,
    pub total_bytes: u64,
    pub bytes_done: u64,
    /// Messages found in the files.
    pub messages: u64,
    /// Stored for the first time.
    pub stored: u64,
    /// Exactly these bytes were already stored.
    pub same_bytes: u64,
    /// What the pipeline did (includes Message-ID duplicates).
    pub pipeline: Summary,
    /// Files that could not be read, with the reason.
    pub failed: Vec<String>,
}

impl ImportReport {
    /// Messages that added nothing new.
    pub fn duplicates(&self) -> u64 {
        self.same_bytes + self.pipeline.duplicates
    }
}

struct Batch {
    items: Vec<(String, Vec<u8>)>,
    bytes: usize,
}

/// Imports every message under `paths` into `mailbox`.
pub fn import(
    store: &Store,
    paths: &[PathBuf],
    mailbox: MailboxId,
    settings: &Settings,
    clock: &dyn Clock,
    progress: &mut dyn FnMut(&ImportReport),
) -> Result<ImportReport, ImportError> {
    // Finish whatever an earlier run left queued before adding more.
    let mut report = ImportReport {
        pipeline: pipeline::process_pending(store, settings, clock)?,
        ..ImportReport::default()
    };
    let mut files = Vec::new();
    for p in paths {
        files.extend(plan(p)?);
    }
    report.files = files.len() as u64;
    report.total_bytes = files.iter().map(|f| f.size).sum();
    let mut batch = Batch {
        items: Vec::new(),
        bytes: 0,
    };
    for file in &files {
        let label = format!("import:{}", file.path.display());
        let result = match file.kind {
            FileKind::Message => std::fs::read(&file.path)
                .map_err(|source| ImportError::Read {
                    path: file.path.clone(),
                    source,
                })
                .and_then(|bytes| {
                    add(
                        store,
                        &mut batch,
                        label,
                        bytes,
                        mailbox,
                        settings,
                        clock,
                        &mut report,
                    )
                }),
            FileKind::Mbox => File::open(&file.path)
                .map_err(|source| ImportError::Read {
                    path: file.path.clone(),
                    source,
                })
                .and_then(|f| {
                    split_mbox(
                        f,
                        |i, bytes| {
                            add(
                                store,
                                &mut batch,
                                format!("{label}#{i}"),
                                bytes,
                                mailbox,
                                settings,
                                clock,
                                &mut report,
                            )
                        },
                        &file.path,
                    )
                }),
        };
        match result {
            Ok(()) => {}
            Err(e @ ImportError::Read { .. }) => {
                log::error!("{e}");
                report.failed.push(e.to_string());
            }
            Err(e) => return Err(e),
        }
        report.bytes_done += file.size;
        progress(&report);
    }
    flush(store, &mut batch, mailbox, settings, clock, &mut report)?;
    progress(&report);
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn add(
    store: &Store,
    batch: &mut Batch,
    label: String,
    bytes: Vec<u8>,
    mailbox: MailboxId,
    settings: &Settings,
    clock: &dyn Clock,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    report.messages += 1;
    batch.bytes += bytes.len();
    batch.items.push((label, bytes));
    if batch.items.len() >= BATCH_ITEMS || batch.bytes >= BATCH_BYTES {
        flush(store, batch, mailbox, settings, clock, report)?;
    }
    Ok(())
}

fn flush(
    store: &Store,
    batch: &mut Batch,
    mailbox: MailboxId,
    settings: &Settings,
    clock: &dyn Clock,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    if batch.items.is_empty() {
        return Ok(());
    }
    let raws: Vec<NewRaw<'_>> = batch
        .items
        .iter()
        .map(|(label, bytes)| NewRaw {
            bytes,
            hash: content_hash(bytes),
            source: label.clone(),
            mailbox,
        })
        .collect();
    let outcomes = store.commit_raws(&raws, clock.now_ms())?;
    drop(raws);
    let mut in_memory = std::collections::BTreeMap::new();
    for (o, (_, bytes)) in outcomes.iter().zip(&batch.items) {
        match o {
            RawOutcome::New(id) => {
                report.stored += 1;
                in_memory.insert(*id, bytes.as_slice());
            }
            RawOutcome::SameBytes(_) => report.same_bytes += 1,
        }
    }
    crate::failpoint::hit("after-raw-commit");
    let s = pipeline::process_pending_with(store, settings, clock, &in_memory)?;
    drop(in_memory);
    batch.items.clear();
    batch.bytes = 0;
    report.pipeline.add(&s);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        split_mbox(
            input,
            |_, m| {
                out.push(m);
                Ok(())
            },
            Path::new("t"),
        )
        .unwrap();
        out
    }

    #[test]
    fn mbox_splits_and_unescapes() {
        let mbox = b"From a@b Sat Jan  3 01:05:34 1996\nSubject: one\n\nbody\n>From here\n>>From there\n\nFrom c@d Sat Jan  3 01:05:34 1996\nSubject: two\n\nx\nFrom inside a paragraph stays\n";
        let msgs = split(mbox);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0], b"Subject: one\n\nbody\nFrom here\n>From there\n");
        assert_eq!(
            msgs[1],
            b"Subject: two\n\nx\nFrom inside a paragraph stays\n"
        );
    }

    #[test]
    fn crlf_mbox_and_text_before_first_separator_are_kept() {
        let msgs = split(b"Subject: stray\r\n\r\nx\r\n\r\nFrom a@b Sat Jan  3 01:05:34 1996\r\nSubject: y\r\n\r\nz\r\n");
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0], b"Subject: stray\r\n\r\nx\r\n");
        assert_eq!(msgs[1], b"Subject: y\r\n\r\nz\r\n");
    }
}
