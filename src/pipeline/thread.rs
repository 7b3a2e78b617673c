//! Thread stage: which conversation a message belongs to. A pure decision over a
//! read-only view of what we already know; the orchestrator applies it.
//!
//! The rules, in order:
//! 1. The conversation tag in the subject (`[#1234]`, prefix configurable) wins, when it
//!    names a conversation we have.
//! 2. Otherwise `In-Reply-To`, then `References` newest first, then the Message-IDs quoted
//!    in a bounce, against every Message-ID we know, received or sent.
//! 3. Otherwise a new conversation.
//! 4. Conversations holding replies that arrived before this message (they referenced its
//!    Message-ID while we did not have it) merge into the conversation it joins.
//! 5. The subject alone never joins or merges anything.
//!
//! Owns: the threading rules. Must not: write anything, or look at subjects beyond the tag.

use crate::model::ConvId;

/// The header facts threading looks at.
#[derive(Clone, Copy, Debug)]
pub struct ThreadInput<'a> {
    pub message_id: Option<&'a str>,
    pub in_reply_to: &'a [String],
    pub references: &'a [String],
    pub reported_ids: &'a [String],
    pub subject: &'a str,
}

/// Read-only view of the known messages and conversations. Every conversation it returns
/// is already resolved through merges (never one with status `merged`).
pub trait ThreadView {
    type Error;
    /// The conversation holding the message with this Message-ID.
    fn conversation_of_msgid(&self, message_id: &str) -> Result<Option<ConvId>, Self::Error>;
    /// The conversation with this number, if it exists.
    fn conversation_by_number(&self, number: u64) -> Result<Option<ConvId>, Self::Error>;
    /// Conversations holding a message that referenced this Message-ID before we knew it.
    fn waiting_on(&self, message_id: &str) -> Result<Vec<ConvId>, Self::Error>;
}

/// Why the message went where it went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Matched {
    /// The subject carried the tag of this conversation number.
    Tag(u64),
    InReplyTo,
    References,
    /// A bounce naming a message we know.
    Report,
    /// Replies to this message arrived first; it joins their conversation.
    EarlierReplies,
    /// Nothing matched: a new conversation.
    Nothing,
}

/// The outcome of threading one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The conversation to join; `None` starts a new one.
    pub target: Option<ConvId>,
    pub matched: Matched,
    /// Conversations to fold into the target (ascending, without the target).
    pub merge: Vec<ConvId>,
    /// Referenced Message-IDs we do not know yet: remember that the target waits on them.
    pub unknown_refs: Vec<String>,
}

/// The first conversation tag in a subject: `[` + prefix + digits + `]`, the prefix
/// compared without regard to ASCII case.
pub fn subject_tag(subject: &str, prefix: &str) -> Option<u64> {
    let lower = subject.to_ascii_lowercase();
    let needle = format!("[{}", prefix.to_ascii_lowercase());
    let mut from = 0;
    while let Some(pos) = lower.get(from..).and_then(|s| s.find(&needle)) {
        let start = from + pos + needle.len();
        let rest = lower.get(start..).unwrap_or("");
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !digits.is_empty()
            && rest.get(digits.len()..).is_some_and(|r| r.starts_with(']'))
            && let Ok(n) = digits.parse::<u64>()
        {
            return Some(n);
        }
        from = start;
    }
    None
}

/// The subject tag for a conversation number.
pub fn format_tag(prefix: &str, number: u64) -> String {
    format!("[{prefix}{number}]")
}

/// Decides where a message goes.
pub fn decide<V: ThreadView>(
    input: &ThreadInput<'_>,
    tag_prefix: &str,
    view: &V,
) -> Result<Decision, V::Error> {
    let mut target = None;
    let mut matched = Matched::Nothing;
    if let Some(n) = subject_tag(input.subject, tag_prefix)
        && let Some(c) = view.conversation_by_number(n)?
    {
        target = Some(c);
        matched = Matched::Tag(n);
    }
    let mut unknown_refs = Vec::new();
    let candidates = input
        .in_reply_to
        .iter()
        .map(|id| (id, Matched::InReplyTo))
        .chain(
            input
                .references
                .iter()
                .rev()
                .map(|id| (id, Matched::References)),
        )
        .chain(input.reported_ids.iter().map(|id| (id, Matched::Report)));
    for (id, how) in candidates {
        if Some(id.as_str()) == input.message_id {
            continue;
        }
        match view.conversation_of_msgid(id)? {
            Some(c) => {
                if target.is_none() {
                    target = Some(c);
                    matched = how;
                }
            }
            None => {
                if !unknown_refs.contains(id) {
                    unknown_refs.push(id.clone());
                }
            }
        }
    }
    let mut merge = match input.message_id {
        Some(id) => view.waiting_on(id)?,
        None => Vec::new(),
    };
    merge.sort();
    merge.dedup();
    if target.is_none() && !merge.is_empty() {
        target = Some(merge.remove(0));
        matched = Matched::EarlierReplies;
    }
    merge.retain(|c| Some(*c) != target);
    Ok(Decision {
        target,
        matched,
        merge,
        unknown_refs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Known {
        msgs: BTreeMap<String, u64>,
        convs: Vec<u64>,
        waiting: BTreeMap<String, Vec<u64>>,
    }

    impl ThreadView for Known {
        type Error = ();
        fn conversation_of_msgid(&self, id: &str) -> Result<Option<ConvId>, ()> {
            Ok(self.msgs.get(id).map(|c| ConvId(*c)))
        }
        fn conversation_by_number(&self, n: u64) -> Result<Option<ConvId>, ()> {
            Ok(self.convs.contains(&n).then_some(ConvId(n)))
        }
        fn waiting_on(&self, id: &str) -> Result<Vec<ConvId>, ()> {
            Ok(self
                .waiting
                .get(id)
                .map(|v| v.iter().map(|c| ConvId(*c)).collect())
                .unwrap_or_default())
        }
    }

    fn input<'a>(
        id: Option<&'a str>,
        irt: &'a [String],
        refs: &'a [String],
        subject: &'a str,
    ) -> ThreadInput<'a> {
        ThreadInput {
            message_id: id,
            in_reply_to: irt,
            references: refs,
            reported_ids: &[],
            subject,
        }
    }

    #[test]
    fn tags_are_found_only_in_their_exact_form() {
        assert_eq!(subject_tag("Re: [#12] Order", "#"), Some(12));
        assert_eq!(subject_tag("AW: [ticket#0042] x", "Ticket#"), Some(42));
        assert_eq!(subject_tag("[#] x [#7]", "#"), Some(7));
        assert_eq!(subject_tag("[#12a] x", "#"), None);
        assert_eq!(subject_tag("#12 x", "#"), None);
        assert_eq!(subject_tag("[#99999999999999999999999] x", "#"), None);
        assert_eq!(format_tag("#", 5), "[#5]");
    }

    #[test]
    fn tag_wins_over_headers() {
        let mut k = Known::default();
        k.msgs.insert("a@x".into(), 1);
        k.convs = vec![1, 2];
        let irt = vec!["a@x".to_string()];
        let d = decide(&input(Some("b@x"), &irt, &[], "Re: [#2] hello"), "#", &k).unwrap();
        assert_eq!(d.target, Some(ConvId(2)));
        assert_eq!(d.matched, Matched::Tag(2));
    }

    #[test]
    fn unknown_tag_falls_back_to_headers() {
        let mut k = Known::default();
        k.msgs.insert("a@x".into(), 1);
        k.convs = vec![1];
        let irt = vec!["a@x".to_string()];
        let d = decide(&input(Some("b@x"), &irt, &[], "Re: [#77] hello"), "#", &k).unwrap();
        assert_eq!(d.target, Some(ConvId(1)));
        assert_eq!(d.matched, Matched::InReplyTo);
    }

    #[test]
    fn newest_known_reference_wins_and_gaps_are_remembered() {
        let mut k = Known::default();
        k.msgs.insert("r1@x".into(), 4);
        let refs = vec!["r1@x".to_string(), "r2@x".to_string(), "r3@x".to_string()];
        let d = decide(&input(Some("m@x"), &[], &refs, "x"), "#", &k).unwrap();
        assert_eq!(d.target, Some(ConvId(4)));
        assert_eq!(d.matched, Matched::References);
        assert_eq!(d.unknown_refs, vec!["r3@x".to_string(), "r2@x".to_string()]);
    }

    #[test]
    fn an_original_arriving_late_joins_and_merges_its_early_replies() {
        let mut k = Known::default();
        k.waiting.insert("orig@x".into(), vec![9, 5]);
        let d = decide(&input(Some("orig@x"), &[], &[], "Help"), "#", &k).unwrap();
        assert_eq!(d.target, Some(ConvId(5)));
        assert_eq!(d.merge, vec![ConvId(9)]);
        assert_eq!(d.matched, Matched::EarlierReplies);
    }

    #[test]
    fn subject_alone_never_threads() {
        let mut k = Known::default();
        k.msgs.insert("a@x".into(), 1);
        k.convs = vec![1];
        let d = decide(&input(Some("b@x"), &[], &[], "Re: Help"), "#", &k).unwrap();
        assert_eq!(d.target, None);
        assert_eq!(d.matched, Matched::Nothing);
    }
}
