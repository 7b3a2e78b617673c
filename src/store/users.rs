//! Typed access to the tables of the web UI: users, sessions, API tokens, read marks,
//! drafts, and the inbox and customer indexes (schema version 4).
//!
//! Owns: reading and writing those tables, keeping `USER_LOGINS` in step with `USERS`.
//! Must not: decide who may log in or see what (that is `crate::users` and `crate::web`).

use super::codec;
use super::schema::*;
use super::{Ctx, Reader, StoreError, Tx, all_decoded, get_decoded};
use crate::model::{
    ApiTokenRecord, ConvId, ConversationRecord, DraftRecord, InviteRecord, MailboxId, NotifyPrefs,
    NotifyTokenRecord, SessionRecord, UserId, UserRecord,
};
use redb::ReadableTable;

fn get_hashed<T>(
    table: &impl ReadableTable<[u8; 32], &'static [u8]>,
    key: &[u8; 32],
    op: &'static str,
    decode: fn(&[u8]) -> Result<T, codec::DecodeError>,
) -> Result<Option<T>, StoreError> {
    match table.get(key).ctx(op)? {
        Some(g) => Ok(Some(decode(g.value())?)),
        None => Ok(None),
    }
}

fn user_by_login(
    logins: &impl ReadableTable<&'static str, u64>,
    users: &impl ReadableTable<u64, &'static [u8]>,
    login: &str,
) -> Result<Option<UserRecord>, StoreError> {
    let key = login.trim().to_lowercase();
    let Some(id) = logins.get(key.as_str()).ctx("finding a user")? else {
        return Ok(None);
    };
    let id = id.value();
    get_decoded(users, id, "reading a user", codec::decode_user)
}

fn tokens_of(
    table: &impl ReadableTable<[u8; 32], &'static [u8]>,
    user: UserId,
) -> Result<Vec<([u8; 32], ApiTokenRecord)>, StoreError> {
    let mut out = Vec::new();
    for item in table.iter().ctx("listing API tokens")? {
        let (k, v) = item.ctx("listing API tokens")?;
        let t = codec::decode_api_token(v.value())?;
        if t.user == user {
            out.push((k.value(), t));
        }
    }
    Ok(out)
}

fn get_draft(
    table: &impl ReadableTable<(u64, u64), &'static [u8]>,
    user: UserId,
    conv: ConvId,
) -> Result<Option<DraftRecord>, StoreError> {
    match table.get((user.0, conv.0)).ctx("reading a draft")? {
        Some(g) => Ok(Some(codec::decode_draft(g.value())?)),
        None => Ok(None),
    }
}

impl Tx<'_> {
    pub fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        get_decoded(&self.users, id.0, "reading a user", codec::decode_user)
    }

    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        all_decoded(&self.users, "listing users", codec::decode_user)
    }

    pub fn user_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        user_by_login(&self.user_logins, &self.users, login)
    }

    /// Writes a user; the login index follows a renamed login.
    pub fn put_user(&mut self, u: &UserRecord) -> Result<(), StoreError> {
        const OP: &str = "writing a user";
        if let Some(old) = self.user(u.id)?
            && old.login != u.login
        {
            self.user_logins.remove(old.login.as_str()).ctx(OP)?;
        }
        self.user_logins.insert(u.login.as_str(), u.id.0).ctx(OP)?;
        self.users
            .insert(u.id.0, codec::encode_user(u).as_slice())
            .ctx(OP)?;
        Ok(())
    }

    pub fn session(&self, key: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
        get_hashed(
            &self.sessions,
            key,
            "reading a session",
            codec::decode_session,
        )
    }

    pub fn put_session(&mut self, key: &[u8; 32], s: &SessionRecord) -> Result<(), StoreError> {
        self.sessions
            .insert(key, codec::encode_session(s).as_slice())
            .ctx("writing a session")?;
        Ok(())
    }

    pub fn remove_session(&mut self, key: &[u8; 32]) -> Result<(), StoreError> {
        self.sessions.remove(key).ctx("ending a session")?;
        Ok(())
    }

    /// Ends every session of `user` (password change, disabled user). Returns how many.
    pub fn remove_sessions_of(&mut self, user: UserId) -> Result<u64, StoreError> {
        const OP: &str = "ending a user's sessions";
        let mut keys = Vec::new();
        for item in self.sessions.iter().ctx(OP)? {
            let (k, v) = item.ctx(OP)?;
            if codec::decode_session(v.value())?.user == user {
                keys.push(k.value());
            }
        }
        for k in &keys {
            self.sessions.remove(k).ctx(OP)?;
        }
        Ok(keys.len() as u64)
    }

    /// Ends sessions not seen since `before` (unix seconds).
    pub fn prune_sessions(&mut self, before: i64) -> Result<u64, StoreError> {
        const OP: &str = "pruning sessions";
        let mut keys = Vec::new();
        for item in self.sessions.iter().ctx(OP)? {
            let (k, v) = item.ctx(OP)?;
            if codec::decode_session(v.value())?.last_seen < before {
                keys.push(k.value());
            }
        }
        for k in &keys {
            self.sessions.remove(k).ctx(OP)?;
        }
        Ok(keys.len() as u64)
    }

    pub fn api_token(&self, key: &[u8; 32]) -> Result<Option<ApiTokenRecord>, StoreError> {
        get_hashed(
            &self.api_tokens,
            key,
            "reading an API token",
            codec::decode_api_token,
        )
    }

    pub fn put_api_token(&mut self, key: &[u8; 32], t: &ApiTokenRecord) -> Result<(), StoreError> {
        self.api_tokens
            .insert(key, codec::encode_api_token(t).as_slice())
            .ctx("writing an API token")?;
        Ok(())
    }

    pub fn remove_api_token(&mut self, key: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self
            .api_tokens
            .remove(key)
            .ctx("removing an API token")?
            .is_some())
    }

    pub fn api_tokens_of(
        &self,
        user: UserId,
    ) -> Result<Vec<([u8; 32], ApiTokenRecord)>, StoreError> {
        tokens_of(&self.api_tokens, user)
    }

    pub fn invite(&self, key: &[u8; 32]) -> Result<Option<InviteRecord>, StoreError> {
        get_hashed(
            &self.invites,
            key,
            "reading an invitation",
            codec::decode_invite,
        )
    }

    pub fn put_invite(&mut self, key: &[u8; 32], i: &InviteRecord) -> Result<(), StoreError> {
        self.invites
            .insert(key, codec::encode_invite(i).as_slice())
            .ctx("writing an invitation")?;
        Ok(())
    }

    /// What `user` wants to be told (the defaults when nothing is stored).
    pub fn notify_prefs(&self, user: UserId) -> Result<NotifyPrefs, StoreError> {
        Ok(get_decoded(
            &self.notify_prefs,
            user.0,
            "reading notification settings",
            codec::decode_notify_prefs,
        )?
        .unwrap_or_default())
    }

    pub fn put_notify_prefs(&mut self, user: UserId, p: &NotifyPrefs) -> Result<(), StoreError> {
        self.notify_prefs
            .insert(user.0, codec::encode_notify_prefs(p).as_slice())
            .ctx("writing notification settings")?;
        Ok(())
    }

    pub fn notify_token(&self, key: &[u8; 32]) -> Result<Option<NotifyTokenRecord>, StoreError> {
        get_hashed(
            &self.notify_tokens,
            key,
            "reading a notification token",
            codec::decode_notify_token,
        )
    }

    pub fn put_notify_token(
        &mut self,
        key: &[u8; 32],
        t: &NotifyTokenRecord,
    ) -> Result<(), StoreError> {
        self.notify_tokens
            .insert(key, codec::encode_notify_token(t).as_slice())
            .ctx("writing a notification token")?;
        Ok(())
    }

    /// Removes every invitation link of `user` (used, replaced, or the user disabled).
    pub fn remove_invites_of(&mut self, user: UserId) -> Result<u64, StoreError> {
        const OP: &str = "removing invitations";
        let mut keys = Vec::new();
        for item in self.invites.iter().ctx(OP)? {
            let (k, v) = item.ctx(OP)?;
            if codec::decode_invite(v.value())?.user == user {
                keys.push(k.value());
            }
        }
        for k in &keys {
            self.invites.remove(k).ctx(OP)?;
        }
        Ok(keys.len() as u64)
    }

    /// Records that `user` has seen `conv` as of `last_activity`.
    pub fn set_read(
        &mut self,
        user: UserId,
        conv: ConvId,
        last_activity: i64,
    ) -> Result<(), StoreError> {
        self.read_marks
            .insert((user.0, conv.0), last_activity)
            .ctx("writing a read mark")?;
        Ok(())
    }

    /// Marks `conv` unread for `user` again.
    pub fn clear_read(&mut self, user: UserId, conv: ConvId) -> Result<(), StoreError> {
        self.read_marks
            .remove((user.0, conv.0))
            .ctx("removing a read mark")?;
        Ok(())
    }

    pub fn draft(&self, user: UserId, conv: ConvId) -> Result<Option<DraftRecord>, StoreError> {
        get_draft(&self.drafts, user, conv)
    }

    pub fn put_draft(
        &mut self,
        user: UserId,
        conv: ConvId,
        d: &DraftRecord,
    ) -> Result<(), StoreError> {
        self.drafts
            .insert((user.0, conv.0), codec::encode_draft(d).as_slice())
            .ctx("writing a draft")?;
        Ok(())
    }

    pub fn remove_draft(&mut self, user: UserId, conv: ConvId) -> Result<(), StoreError> {
        self.drafts
            .remove((user.0, conv.0))
            .ctx("removing a draft")?;
        Ok(())
    }

    /// Every conversation (migrations).
    pub(crate) fn all_conversations(&self) -> Result<Vec<ConversationRecord>, StoreError> {
        all_decoded(
            &self.convs,
            "listing conversations",
            codec::decode_conversation,
        )
    }
}

/// One page of an inbox listing.
#[derive(Debug, Default)]
pub struct InboxPage {
    /// Conversations of the page, newest activity first.
    pub convs: Vec<ConvId>,
    /// How many conversations the listing holds in all.
    pub total: u64,
}

impl Reader {
    pub fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        match self.table_u64(USERS)? {
            Some(t) => get_decoded(&t, id.0, "reading a user", codec::decode_user),
            None => Ok(None),
        }
    }

    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        match self.table_u64(USERS)? {
            Some(t) => all_decoded(&t, "listing users", codec::decode_user),
            None => Ok(Vec::new()),
        }
    }

    pub fn user_by_login(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        let (Some(logins), Some(users)) = (read_table!(self, USER_LOGINS), self.table_u64(USERS)?)
        else {
            return Ok(None);
        };
        user_by_login(&logins, &users, login)
    }

    pub fn session(&self, key: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
        match read_table!(self, SESSIONS) {
            Some(t) => get_hashed(&t, key, "reading a session", codec::decode_session),
            None => Ok(None),
        }
    }

    pub fn api_token(&self, key: &[u8; 32]) -> Result<Option<ApiTokenRecord>, StoreError> {
        match read_table!(self, API_TOKENS) {
            Some(t) => get_hashed(&t, key, "reading an API token", codec::decode_api_token),
            None => Ok(None),
        }
    }

    pub fn api_tokens_of(
        &self,
        user: UserId,
    ) -> Result<Vec<([u8; 32], ApiTokenRecord)>, StoreError> {
        match read_table!(self, API_TOKENS) {
            Some(t) => tokens_of(&t, user),
            None => Ok(Vec::new()),
        }
    }

    pub fn invite(&self, key: &[u8; 32]) -> Result<Option<InviteRecord>, StoreError> {
        match read_table!(self, INVITES) {
            Some(t) => get_hashed(&t, key, "reading an invitation", codec::decode_invite),
            None => Ok(None),
        }
    }

    /// What `user` wants to be told (the defaults when nothing is stored).
    pub fn notify_prefs(&self, user: UserId) -> Result<NotifyPrefs, StoreError> {
        match self.table_u64(NOTIFY_PREFS)? {
            Some(t) => Ok(get_decoded(
                &t,
                user.0,
                "reading notification settings",
                codec::decode_notify_prefs,
            )?
            .unwrap_or_default()),
            None => Ok(NotifyPrefs::default()),
        }
    }

    /// Every open invitation link: (user, record), for the users page.
    pub fn invites(&self) -> Result<Vec<InviteRecord>, StoreError> {
        const OP: &str = "listing invitations";
        let Some(t) = read_table!(self, INVITES) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in t.iter().ctx(OP)? {
            let (_, v) = item.ctx(OP)?;
            out.push(codec::decode_invite(v.value())?);
        }
        Ok(out)
    }

    /// The newest `last_seen` of each user's live sessions (the users page's "last seen").
    pub fn last_seen_by_user(&self) -> Result<std::collections::HashMap<UserId, i64>, StoreError> {
        const OP: &str = "listing sessions";
        let mut out = std::collections::HashMap::new();
        let Some(t) = read_table!(self, SESSIONS) else {
            return Ok(out);
        };
        for item in t.iter().ctx(OP)? {
            let (_, v) = item.ctx(OP)?;
            let s = codec::decode_session(v.value())?;
            let e = out.entry(s.user).or_insert(s.last_seen);
            *e = (*e).max(s.last_seen);
        }
        Ok(out)
    }

    /// The `last_activity` `user` has seen of `conv` (None: never opened).
    pub fn read_mark(&self, user: UserId, conv: ConvId) -> Result<Option<i64>, StoreError> {
        match read_table!(self, READ_MARKS) {
            Some(t) => Ok(t
                .get((user.0, conv.0))
                .ctx("reading a read mark")?
                .map(|g| g.value())),
            None => Ok(None),
        }
    }

    pub fn draft(&self, user: UserId, conv: ConvId) -> Result<Option<DraftRecord>, StoreError> {
        match read_table!(self, DRAFTS) {
            Some(t) => get_draft(&t, user, conv),
            None => Ok(None),
        }
    }

    /// The conversations `user` has a draft for, newest draft first.
    pub fn drafts_of(&self, user: UserId) -> Result<Vec<(ConvId, DraftRecord)>, StoreError> {
        let Some(t) = read_table!(self, DRAFTS) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in t
            .range((user.0, 0)..=(user.0, u64::MAX))
            .ctx("listing drafts")?
        {
            let (k, v) = item.ctx("listing drafts")?;
            out.push((ConvId(k.value().1), codec::decode_draft(v.value())?));
        }
        out.sort_by_key(|(_, d)| std::cmp::Reverse(d.updated));
        Ok(out)
    }

    /// Conversations of `mailbox` in `bucket`, newest activity first: `limit` of them
    /// after skipping `offset`, and how many there are.
    pub fn inbox_page(
        &self,
        mailbox: MailboxId,
        bucket: u8,
        offset: u64,
        limit: u64,
    ) -> Result<InboxPage, StoreError> {
        const OP: &str = "listing the inbox";
        let Some(t) = read_table!(self, INBOX) else {
            return Ok(InboxPage::default());
        };
        let range = (mailbox.0, bucket, 0u64, 0u64)..=(mailbox.0, bucket, u64::MAX, u64::MAX);
        let mut page = InboxPage::default();
        for item in t.range(range).ctx(OP)? {
            let (k, _) = item.ctx(OP)?;
            if page.total >= offset && (page.convs.len() as u64) < limit {
                page.convs.push(ConvId(k.value().3));
            }
            page.total += 1;
        }
        Ok(page)
    }

    /// The conversations of `mailbox` in `bucket` with their last activity, newest
    /// first, at most `limit` (listings that merge mailboxes or filter by assignee).
    pub fn inbox_all(
        &self,
        mailbox: MailboxId,
        bucket: u8,
        limit: Option<usize>,
    ) -> Result<Vec<(i64, ConvId)>, StoreError> {
        const OP: &str = "listing the inbox";
        let Some(t) = read_table!(self, INBOX) else {
            return Ok(Vec::new());
        };
        let range = (mailbox.0, bucket, 0u64, 0u64)..=(mailbox.0, bucket, u64::MAX, u64::MAX);
        let mut out = Vec::new();
        for item in t.range(range).ctx(OP)? {
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            let (k, _) = item.ctx(OP)?;
            let (_, _, inv, conv) = k.value();
            out.push((
                i64::try_from(u64::MAX - inv).unwrap_or(i64::MAX),
                ConvId(conv),
            ));
        }
        Ok(out)
    }

    /// The open (active and pending) conversations of `mailbox`: `(last activity, id,
    /// assignee)`, newest first per assignee (callers merge and sort).
    pub fn open_conversations(
        &self,
        mailbox: MailboxId,
    ) -> Result<Vec<(i64, ConvId, Option<UserId>)>, StoreError> {
        const OP: &str = "listing open conversations";
        let Some(t) = read_table!(self, OPEN_BY_ASSIGNEE) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in t
            .range((mailbox.0, 0u64, 0u64, 0u64)..=(mailbox.0, u64::MAX, u64::MAX, u64::MAX))
            .ctx(OP)?
        {
            let (k, _) = item.ctx(OP)?;
            let (_, who, inv, conv) = k.value();
            out.push((
                i64::try_from(u64::MAX - inv).unwrap_or(i64::MAX),
                ConvId(conv),
                (who != 0).then_some(UserId(who)),
            ));
        }
        Ok(out)
    }

    /// How many conversations `mailbox` has in `bucket`.
    pub fn inbox_count(&self, mailbox: MailboxId, bucket: u8) -> Result<u64, StoreError> {
        let Some(t) = read_table!(self, INBOX_COUNTS) else {
            return Ok(0);
        };
        Ok(t.get((mailbox.0, bucket))
            .ctx("counting the inbox")?
            .map(|g| g.value())
            .unwrap_or(0))
    }

    /// The conversations `ids` that exist, in that order (one table open for all).
    pub fn conversations_by_id(
        &self,
        ids: &[ConvId],
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let Some(t) = self.table_u64(CONVERSATIONS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(c) = get_decoded(
                &t,
                id.0,
                "reading a conversation",
                codec::decode_conversation,
            )? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Every read mark of `user`: conversation -> the `last_activity` seen.
    pub fn read_marks_of(
        &self,
        user: UserId,
    ) -> Result<std::collections::HashMap<ConvId, i64>, StoreError> {
        let mut out = std::collections::HashMap::new();
        let Some(t) = read_table!(self, READ_MARKS) else {
            return Ok(out);
        };
        for item in t
            .range((user.0, 0)..=(user.0, u64::MAX))
            .ctx("reading read marks")?
        {
            let (k, v) = item.ctx("reading read marks")?;
            out.insert(ConvId(k.value().1), v.value());
        }
        Ok(out)
    }

    /// The conversations whose customer is `email`, newest id first.
    pub fn customer_conversations(&self, email: &str) -> Result<Vec<ConvId>, StoreError> {
        let Some(t) = read_table!(self, CUSTOMER_CONVS) else {
            return Ok(Vec::new());
        };
        let key = email.to_lowercase();
        let mut out = Vec::new();
        for item in t
            .range((key.as_str(), 0u64)..=(key.as_str(), u64::MAX))
            .ctx("listing a customer's conversations")?
        {
            let (k, _) = item.ctx("listing a customer's conversations")?;
            out.push(ConvId(k.value().1));
        }
        out.reverse();
        Ok(out)
    }
}
