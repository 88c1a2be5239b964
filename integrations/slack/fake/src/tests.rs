//! The fake over real HTTP, checked against Slack's reference.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::workspace::parse_ts;
use crate::{
    ALL_SCOPES, ConversationKind, FakeSlack, Fault, RateProfile, SlackConfig, limit_per_window,
};

struct Call {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Call {
    fn ok(&self) -> bool {
        self.body["ok"] == Value::Bool(true)
    }

    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn client() -> reqwest::Client {
    tributary_sdk::http::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn call(
    fake: &FakeSlack,
    token: Option<&str>,
    method: &str,
    params: &[(&str, &str)],
) -> Call {
    let mut request = client()
        .post(format!("{}{method}", fake.base_url()))
        .form(params);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.expect("json body");
    Call {
        status,
        headers,
        body,
    }
}

async fn get(fake: &FakeSlack, token: &str, method: &str, query: &[(&str, &str)]) -> Call {
    let mut q: Vec<(&str, &str)> = query.to_vec();
    q.push(("token", token));
    let response = client()
        .get(format!("{}{method}", fake.base_url()))
        .query(&q)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.expect("json body");
    Call {
        status,
        headers,
        body,
    }
}

fn unlimited() -> SlackConfig {
    SlackConfig {
        enforce_limits: false,
        ..SlackConfig::default()
    }
}

fn ts_list(call: &Call) -> Vec<String> {
    call.body["messages"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["ts"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn next_cursor(call: &Call) -> String {
    call.body["response_metadata"]["next_cursor"]
        .as_str()
        .expect("next_cursor is a string")
        .to_owned()
}

/// Every page of a paged method, following `next_cursor` until it is empty.
async fn all_pages(
    fake: &FakeSlack,
    token: &str,
    method: &str,
    params: &[(&str, &str)],
) -> Vec<Call> {
    let mut pages = Vec::new();
    let mut cursor = String::new();
    loop {
        let mut p: Vec<(&str, &str)> = params.to_vec();
        if !cursor.is_empty() {
            p.push(("cursor", &cursor));
        }
        let page = call(fake, Some(token), method, &p).await;
        assert!(page.ok(), "{method}: {}", page.body);
        cursor = next_cursor(&page);
        assert_eq!(
            page.body["has_more"]
                .as_bool()
                .unwrap_or(!cursor.is_empty()),
            !cursor.is_empty()
        );
        pages.push(page);
        if cursor.is_empty() {
            return pages;
        }
        assert!(pages.len() < 10_000, "paging does not end");
    }
}

#[tokio::test]
async fn envelope_and_auth_errors() {
    let fake = FakeSlack::start(SlackConfig {
        rotation: true,
        ..unlimited()
    })
    .await
    .expect("start");
    let handle = fake.handle();
    let none = call(&fake, None, "auth.test", &[]).await;
    assert_eq!((none.status, none.error()), (200, "not_authed"));
    assert_eq!(none.body["ok"], Value::Bool(false));
    let bogus = call(&fake, Some("xoxp-nope"), "auth.test", &[]).await;
    assert_eq!(bogus.error(), "invalid_auth");
    let unknown = call(&fake, Some("xoxp-nope"), "chat.meMessage", &[]).await;
    assert_eq!(unknown.error(), "unknown_method");

    let grant = handle.grant(ALL_SCOPES);
    assert!(grant.access_token.starts_with("xoxe.xoxp-1-"));
    assert!(
        grant
            .refresh_token
            .as_deref()
            .is_some_and(|r| r.starts_with("xoxe-1-"))
    );
    let me = call(&fake, Some(&grant.access_token), "auth.test", &[]).await;
    assert!(me.ok(), "{}", me.body);
    assert_eq!(me.body["user_id"], Value::String(handle.installer()));
    assert_eq!(me.body["team_id"], Value::String(handle.team_id()));
    let expires = me.body["expires_in"].as_u64().expect("expires_in");
    assert!(expires > 43_000 && expires <= 43_200, "{expires}");
    assert_eq!(
        me.header("x-oauth-scopes"),
        Some(ALL_SCOPES.join(",").as_str())
    );
    // The token field works as well as the header.
    let by_field = get(&fake, &grant.access_token, "auth.test", &[]).await;
    assert!(by_field.ok());

    let general = handle.create_conversation(ConversationKind::Public, "general");
    let narrow = handle.grant(&["channels:read"]);
    let denied = call(
        &fake,
        Some(&narrow.access_token),
        "conversations.history",
        &[("channel", &general)],
    )
    .await;
    assert_eq!(denied.error(), "missing_scope");
    assert_eq!(denied.body["needed"], "channels:history");
    assert_eq!(denied.body["provided"], "channels:read");
    let list = call(
        &fake,
        Some(&narrow.access_token),
        "conversations.list",
        &[("types", "public_channel,private_channel,im")],
    )
    .await;
    assert_eq!(list.error(), "missing_scope");
    assert_eq!(list.body["needed"], "groups:read,im:read");
    let users = call(&fake, Some(&narrow.access_token), "users.list", &[]).await;
    assert_eq!(users.body["needed"], "users:read");

    handle.revoke(&narrow.access_token);
    let revoked = call(&fake, Some(&narrow.access_token), "auth.test", &[]).await;
    assert_eq!(revoked.error(), "token_revoked");
    handle.expire_access_tokens();
    let expired = call(&fake, Some(&grant.access_token), "auth.test", &[]).await;
    assert_eq!(expired.error(), "token_expired");
    // Natural expiry on the token clock.
    let fresh = handle.grant(ALL_SCOPES);
    assert!(
        call(&fake, Some(&fresh.access_token), "auth.test", &[])
            .await
            .ok()
    );
    handle.advance(Duration::from_secs(12 * 3600));
    let late = call(&fake, Some(&fresh.access_token), "auth.test", &[]).await;
    assert_eq!(late.error(), "token_expired");
    assert_eq!(handle.calls("auth.test"), 8);
    fake.stop().await.expect("stop");
}

#[tokio::test]
async fn history_pages_cover_every_message_once_newest_first() {
    let fake = FakeSlack::start(unlimited()).await.expect("start");
    let handle = fake.handle();
    let token = handle.grant(ALL_SCOPES).access_token;
    let me = handle.installer();
    let channel = handle.create_conversation(ConversationKind::Public, "paging");
    let mut posted = Vec::new();
    for i in 0..57 {
        posted.push(
            handle
                .post(&channel, &me, &format!("message {i}"))
                .expect("post"),
        );
    }
    let parent = posted[3].clone();
    handle
        .reply(&channel, &parent, &me, "a reply")
        .expect("reply");
    let pages = all_pages(
        &fake,
        &token,
        "conversations.history",
        &[("channel", &channel), ("limit", "10")],
    )
    .await;
    assert_eq!(pages.len(), 6);
    let seen: Vec<String> = pages.iter().flat_map(ts_list).collect();
    let mut expected = posted.clone();
    expected.reverse();
    assert_eq!(seen, expected, "every top-level message once, newest first");
    for w in posted.windows(2) {
        assert!(parse_ts(&w[0]) < parse_ts(&w[1]), "ts increase");
    }
    let last = pages.last().expect("a page");
    assert_eq!(next_cursor(last), "");
    assert_eq!(last.body["has_more"], Value::Bool(false));
    assert_eq!(pages[0].body["pin_count"], 0);
    // A page past a change stays exact (keyset cursors).
    let first = call(
        &fake,
        Some(&token),
        "conversations.history",
        &[("channel", &channel), ("limit", "5")],
    )
    .await;
    handle.post(&channel, &me, "newer").expect("post");
    let cursor = next_cursor(&first);
    let second = call(
        &fake,
        Some(&token),
        "conversations.history",
        &[("channel", &channel), ("limit", "5"), ("cursor", &cursor)],
    )
    .await;
    assert_eq!(ts_list(&second), expected[5..10].to_vec());
    let bad = call(
        &fake,
        Some(&token),
        "conversations.history",
        &[("channel", &channel), ("cursor", "zzz")],
    )
    .await;
    assert_eq!(bad.error(), "invalid_cursor");
    // Defaults and caps.
    let default = call(
        &fake,
        Some(&token),
        "conversations.history",
        &[("channel", &channel)],
    )
    .await;
    assert_eq!(ts_list(&default).len(), 58);
    fake.stop().await.expect("stop");
}

#[tokio::test]
async fn oldest_latest_inclusive() {
    let fake = FakeSlack::start(unlimited()).await.expect("start");
    let handle = fake.handle();
    let token = handle.grant(ALL_SCOPES).access_token;
    let me = handle.installer();
    let channel = handle.create_conversation(ConversationKind::Private, "bounds");
    let ts: Vec<String> = (0..6)
        .map(|i| handle.post(&channel, &me, &format!("m{i}")).expect("post"))
        .collect();
    let page = |oldest: &str, latest: &str, inclusive: &str| {
        let (channel, token, oldest, latest, inclusive) = (
            channel.clone(),
            token.clone(),
            oldest.to_owned(),
            latest.to_owned(),
            inclusive.to_owned(),
        );
        let fake = &fake;
        async move {
            let mut p = vec![("channel", channel.as_str())];
            if !oldest.is_empty() {
                p.push(("oldest", &oldest));
            }
            if !latest.is_empty() {
                p.push(("latest", &latest));
            }
            if !inclusive.is_empty() {
                p.push(("inclusive", &inclusive));
            }
            ts_list(&call(fake, Some(&token), "conversations.history", &p).await)
        }
    };
    assert_eq!(
        page(&ts[1], &ts[4], "").await,
        vec![ts[3].clone(), ts[2].clone()]
    );
    assert_eq!(
        page(&ts[1], &ts[4], "true").await,
        vec![ts[4].clone(), ts[3].clone(), ts[2].clone(), ts[1].clone()]
    );
    assert_eq!(page(&ts[4], "", "").await, vec![ts[5].clone()]);
    assert_eq!(page("", &ts[1], "").await, vec![ts[0].clone()]);
    assert_eq!(page("0", "", "").await.len(), 6);
    assert!(page(&ts[3], &ts[3], "").await.is_empty());
    assert_eq!(page(&ts[3], &ts[3], "1").await, vec![ts[3].clone()]);
    let bad = call(
        &fake,
        Some(&token),
        "conversations.history",
        &[("channel", &channel), ("oldest", "x.y")],
    )
    .await;
    assert_eq!(bad.error(), "invalid_ts_oldest");
    fake.stop().await.expect("stop");
}

#[tokio::test]
async fn replies_parent_first_then_oldest_first() {
    let fake = FakeSlack::start(unlimited()).await.expect("start");
    let handle = fake.handle();
    let token = handle.grant(ALL_SCOPES).access_token;
    let me = handle.installer();
    let bob = handle.add_user("Bob");
    let channel = handle.create_conversation(ConversationKind::Mpim, "mpdm-tester--bob-1");
    let parent = handle.post(&channel, &me, "parent").expect("post");
    let lonely = handle.post(&channel, &me, "no thread").expect("post");
    let mut replies = Vec::new();
    for i in 0..7 {
        let who = if i % 2 == 0 { &bob } else { &me };
        replies.push(
            handle
                .reply(&channel, &parent, who, &format!("r{i}"))
                .expect("reply"),
        );
    }
    let pages = all_pages(
        &fake,
        &token,
        "conversations.replies",
        &[("channel", &channel), ("ts", &parent), ("limit", "3")],
    )
    .await;
    let seen: Vec<String> = pages.iter().flat_map(ts_list).collect();
    let mut expected = vec![parent.clone()];
    expected.extend(replies.iter().cloned());
    assert_eq!(
        seen, expected,
        "the parent once, first; then the replies oldest first"
    );
    let first = &pages[0].body["messages"];
    assert_eq!(first[0]["reply_count"], 7);
    assert_eq!(first[0]["reply_users_count"], 2);
    assert_eq!(first[0]["thread_ts"], Value::String(parent.clone()));
    assert_eq!(first[0]["latest_reply"], Value::String(replies[6].clone()));
    assert_eq!(first[1]["thread_ts"], Value::String(parent.clone()));
    assert_eq!(first[1]["parent_user_id"], Value::String(me.clone()));
    // A reply's ts finds its thread; an unthreaded ts just the message.
    let by_reply = call(
        &fake,
        Some(&token),
        "conversations.replies",
        &[("channel", &channel), ("ts", &replies[2])],
    )
    .await;
    assert_eq!(ts_list(&by_reply).len(), 8);
    let single = call(
        &fake,
        Some(&token),
        "conversations.replies",
        &[("channel", &channel), ("ts", &lonely)],
    )
    .await;
    assert_eq!(ts_list(&single), vec![lonely.clone()]);
    assert!(single.body["messages"][0].get("thread_ts").is_none());
    let unknown = call(
        &fake,
        Some(&token),
        "conversations.replies",
        &[("channel", &channel), ("ts", "1.000001")],
    )
    .await;
    assert_eq!(unknown.error(), "thread_not_found");
    // History lists the parent, not the replies.
    let history = call(
        &fake,
        Some(&token),
        "conversations.history",
        &[("channel", &channel)],
    )
    .await;
    assert_eq!(ts_list(&history), vec![lonely, parent]);
    fake.stop().await.expect("stop");
}

#[tokio::test]
async fn deleting_a_parent_with_replies_leaves_a_tombstone() {
    let fake = FakeSlack::start(unlimited()).await.expect("start");
    let handle = fake.handle();
    let token = handle.grant(ALL_SCOPES).access_token;
    let me = handle.installer();
    let channel = handle.create_conversation(ConversationKind::Public, "deletes");
    let parent = handle.post(&channel, &me, "parent").expect("post");
    let plain = handle.post(&channel, &me, "plain").expect("post");
    let reply = handle
        .reply(&channel, &parent, &me, "reply")
        .expect("reply");
    handle.delete(&channel, &parent).expect("delete");
    handle.delete(&channel, &plain).expect("delete");
    let history = call(
        &fake,
        Some(&token),
        "conversations.history",
        &[("channel", &channel)],
    )
    .await;
    let messages = history.body["messages"].as_array().expect("messages");
    assert_eq!(
        messages.len(),
        1,
        "the plain message is gone: {}",
        history.body
    );
    let tomb = &messages[0];
    assert_eq!(tomb["subtype"], "tombstone");
    assert_eq!(tomb["text"], "This message was deleted.");
    assert_eq!(tomb["user"], "USLACKBOT");
    assert_eq!(tomb["hidden"], true);
    assert_eq!(tomb["thread_ts"], Value::String(parent.clone()));
    assert_eq!(tomb["reply_count"], 1);
    let snapshot = handle.snapshot();
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].ts, reply);
    assert!(snapshot[0].is_reply);
    assert_eq!(snapshot[0].thread_ts.as_deref(), Some(parent.as_str()));
    // The thread is still readable; when its last reply goes, the tombstone goes.
    let thread = call(
        &fake,
        Some(&token),
        "conversations.replies",
        &[("channel", &channel), ("ts", &parent)],
    )
    .await;
    assert_eq!(ts_list(&thread), vec![parent.clone(), reply.clone()]);
    handle.delete(&channel, &reply).expect("delete");
    let history = call(
        &fake,
        Some(&token),
        "conversations.history",
        &[("channel", &channel)],
    )
    .await;
    assert!(ts_list(&history).is_empty());
    assert!(handle.delete(&channel, &plain).is_err());
    fake.stop().await.expect("stop");
}

#[tokio::test]
async fn edits_keep_the_ts_and_add_edited() {
    let fake = FakeSlack::start(unlimited()).await.expect("start");
    let handle = fake.handle();
    let token = handle.grant(ALL_SCOPES).access_token;
    let me = handle.installer();
    let channel = handle.create_conversation(ConversationKind::Im, "Carol");
    let ts = handle.post(&channel, &me, "before").expect("post");
    handle.edit(&channel, &ts, "after").expect("edit");
    handle.react(&channel, &ts, "tada", &me).expect("react");
    let history = call(
        &fake,
        Some(&token),
        "conversations.history",
        &[("channel", &channel)],
    )
    .await;
    let msg = &history.body["messages"][0];
    assert_eq!(msg["ts"], Value::String(ts.clone()));
    assert_eq!(msg["text"], "after");
    assert_eq!(msg["edited"]["user"], Value::String(me.clone()));
    let edited = msg["edited"]["ts"].as_str().expect("edited.ts");
    assert!(parse_ts(edited) > parse_ts(&ts));
    assert_eq!(msg["reactions"][0]["name"], "tada");
    assert_eq!(msg["reactions"][0]["count"], 1);
    let truth = &handle.snapshot()[0];
    assert_eq!(truth.edited_ts.as_deref(), Some(edited));
    assert_eq!(truth.reactions, vec![("tada".to_owned(), 1)]);
    fake.stop().await.expect("stop");
}

#[tokio::test]
async fn visibility_archive_and_removal() {
    let fake = FakeSlack::start(unlimited()).await.expect("start");
    let handle = fake.handle();
    let token = handle.grant(ALL_SCOPES).access_token;
    let public = handle.create_conversation(ConversationKind::Public, "public");
    let outside = handle.create_conversation(ConversationKind::Public, "outside");
    let secret = handle.create_conversation(ConversationKind::Private, "secret");
    let old = handle.create_conversation(ConversationKind::Public, "old");
    let gone = handle.create_conversation(ConversationKind::Public, "gone");
    let dm = handle.create_conversation(ConversationKind::Im, "Dora");
    handle.set_member(&outside, false).expect("leave");
    handle.set_member(&secret, false).expect("leave");
    handle.archive(&old).expect("archive");
    handle.remove_conversation(&gone).expect("remove");
    let ids = |call: &Call| -> BTreeSet<String> {
        call.body["channels"]
            .as_array()
            .expect("channels")
            .iter()
            .map(|c| c["id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let all = call(
        &fake,
        Some(&token),
        "conversations.list",
        &[("types", "public_channel,private_channel,mpim,im")],
    )
    .await;
    assert_eq!(
        ids(&all),
        BTreeSet::from([public.clone(), outside.clone(), old.clone(), dm.clone()])
    );
    let only_public = call(
        &fake,
        Some(&token),
        "conversations.list",
        &[("exclude_archived", "true")],
    )
    .await;
    assert_eq!(
        ids(&only_public),
        BTreeSet::from([public.clone(), outside.clone()])
    );
    let paged = all_pages(
        &fake,
        &token,
        "conversations.list",
        &[("types", "public_channel,im"), ("limit", "1")],
    )
    .await;
    assert_eq!(paged.len(), 4);
    let im = all.body["channels"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == Value::String(dm.clone())))
        .expect("the DM");
    assert_eq!(im["is_im"], true);
    assert!(im["user"].as_str().is_some_and(|u| u.starts_with('U')));
    let not_in = call(
        &fake,
        Some(&token),
        "conversations.history",
        &[("channel", &outside)],
    )
    .await;
    assert_eq!(not_in.error(), "not_in_channel");
    let hidden = call(
        &fake,
        Some(&token),
        "conversations.history",
        &[("channel", &secret)],
    )
    .await;
    assert_eq!(hidden.error(), "channel_not_found");
    let removed = call(
        &fake,
        Some(&token),
        "conversations.info",
        &[("channel", &gone)],
    )
    .await;
    assert_eq!(removed.error(), "channel_not_found");
    let archived = call(
        &fake,
        Some(&token),
        "conversations.history",
        &[("channel", &old)],
    )
    .await;
    assert!(archived.ok());
    let info = call(
        &fake,
        Some(&token),
        "conversations.info",
        &[("channel", &old)],
    )
    .await;
    assert_eq!(info.body["channel"]["is_archived"], true);
    let members = call(
        &fake,
        Some(&token),
        "conversations.members",
        &[("channel", &public)],
    )
    .await;
    assert_eq!(
        members.body["members"],
        serde_json::json!([handle.installer()])
    );
    let truths = handle.conversations();
    assert!(truths.iter().any(|c| c.id == gone && c.removed));
    assert!(truths.iter().any(|c| c.id == secret && !c.is_member));
    fake.stop().await.expect("stop");
}

#[tokio::test]
async fn a_full_sync_of_a_generated_workspace_finds_the_snapshot() {
    let fake = FakeSlack::start(SlackConfig {
        channels: 12,
        messages: 400,
        replies: 90,
        users: 8,
        ..unlimited()
    })
    .await
    .expect("start");
    let handle = fake.handle();
    let token = handle.grant(ALL_SCOPES).access_token;
    let lists = all_pages(
        &fake,
        &token,
        "conversations.list",
        &[
            ("types", "public_channel,private_channel,mpim,im"),
            ("limit", "5"),
        ],
    )
    .await;
    let mut found: HashSet<(String, String)> = HashSet::new();
    let mut tombstones = 0;
    for channel in lists
        .iter()
        .flat_map(|p| p.body["channels"].as_array().cloned().unwrap_or_default())
    {
        if channel["is_member"] != Value::Bool(true) {
            continue;
        }
        let id = channel["id"].as_str().expect("id").to_owned();
        for page in all_pages(
            &fake,
            &token,
            "conversations.history",
            &[("channel", &id), ("limit", "50")],
        )
        .await
        {
            for msg in page.body["messages"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let ts = msg["ts"].as_str().expect("ts").to_owned();
                if msg["subtype"] == "tombstone" {
                    tombstones += 1;
                } else {
                    assert!(found.insert((id.clone(), ts.clone())), "seen twice");
                }
                if msg["reply_count"].as_u64().unwrap_or(0) > 0 {
                    for page in all_pages(
                        &fake,
                        &token,
                        "conversations.replies",
                        &[("channel", &id), ("ts", &ts), ("limit", "4")],
                    )
                    .await
                    {
                        for r in page.body["messages"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default()
                        {
                            let rts = r["ts"].as_str().expect("ts").to_owned();
                            if rts != ts {
                                assert!(found.insert((id.clone(), rts)), "reply seen twice");
                            }
                        }
                    }
                }
            }
        }
    }
    let truth: HashSet<(String, String)> = handle
        .snapshot()
        .into_iter()
        .map(|m| (m.channel, m.ts))
        .collect();
    assert_eq!(tombstones, 0);
    assert_eq!(truth.len(), 490, "every generated message and reply");
    assert_eq!(found, truth);
    // Busy and quiet: the busiest conversation holds far more than the quietest.
    let mut per: std::collections::HashMap<String, usize> = Default::default();
    for (c, _) in &truth {
        *per.entry(c.clone()).or_default() += 1;
    }
    let max = per.values().max().copied().unwrap_or(0);
    assert!(max >= 100, "a busy conversation: {per:?}");
    let users = call(&fake, Some(&token), "users.list", &[]).await;
    assert_eq!(users.body["members"].as_array().map(Vec::len), Some(8));
    fake.stop().await.expect("stop");
}

#[tokio::test]
async fn tier_limits_answer_429_until_the_window_passes() {
    assert_eq!(
        limit_per_window(RateProfile::Internal, "conversations.list"),
        Some(20)
    );
    assert_eq!(
        limit_per_window(RateProfile::Internal, "conversations.history"),
        Some(50)
    );
    assert_eq!(
        limit_per_window(RateProfile::Marketplace, "conversations.replies"),
        Some(50)
    );
    assert_eq!(
        limit_per_window(RateProfile::Limited2025, "conversations.replies"),
        Some(1)
    );
    assert_eq!(
        limit_per_window(RateProfile::Internal, "users.info"),
        Some(100)
    );
    assert_eq!(
        limit_per_window(RateProfile::Internal, "chat.postMessage"),
        None
    );
    let fake = FakeSlack::start(SlackConfig::default())
        .await
        .expect("start");
    let handle = fake.handle();
    let token = handle.grant(ALL_SCOPES).access_token;
    for i in 0..20 {
        let ok = call(&fake, Some(&token), "conversations.list", &[]).await;
        assert!(ok.ok(), "call {i}: {}", ok.body);
    }
    let limited = call(&fake, Some(&token), "conversations.list", &[]).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.error(), "ratelimited");
    let retry: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    // Other methods have windows of their own.
    assert!(call(&fake, Some(&token), "users.list", &[]).await.ok());
    assert_eq!(handle.rate_limited("conversations.list"), 1);
    assert_eq!(handle.calls("conversations.list"), 21);
    handle.advance(Duration::from_secs(60));
    assert!(
        call(&fake, Some(&token), "conversations.list", &[])
            .await
            .ok()
    );
    assert_eq!(handle.total_rate_limited(), 1);
    handle.reset_counters();
    assert_eq!(handle.calls("conversations.list"), 0);
    fake.stop().await.expect("stop");

    // time_scale shrinks the window (and Retry-After with it); enforce_limits off never limits.
    let fast = FakeSlack::start(SlackConfig {
        time_scale: 60.0,
        ..SlackConfig::default()
    })
    .await
    .expect("start");
    let token = fast.handle().grant(ALL_SCOPES).access_token;
    for _ in 0..20 {
        call(&fast, Some(&token), "users.list", &[]).await;
    }
    let limited = call(&fast, Some(&token), "users.list", &[]).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("1"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(call(&fast, Some(&token), "users.list", &[]).await.ok());
    let free = FakeSlack::start(unlimited()).await.expect("start");
    let token = free.handle().grant(ALL_SCOPES).access_token;
    for _ in 0..30 {
        assert!(call(&free, Some(&token), "users.list", &[]).await.ok());
    }
    assert_eq!(free.handle().total_rate_limited(), 0);
}

#[tokio::test]
async fn limited_2025_caps_limit_at_15_and_one_call_a_window() {
    let fake = FakeSlack::start(SlackConfig {
        profile: RateProfile::Limited2025,
        ..SlackConfig::default()
    })
    .await
    .expect("start");
    let handle = fake.handle();
    let token = handle.grant(ALL_SCOPES).access_token;
    let me = handle.installer();
    let channel = handle.create_conversation(ConversationKind::Public, "limited");
    for i in 0..40 {
        handle.post(&channel, &me, &format!("m{i}")).expect("post");
    }
    let first = call(
        &fake,
        Some(&token),
        "conversations.history",
        &[("channel", &channel), ("limit", "200")],
    )
    .await;
    assert_eq!(ts_list(&first).len(), 15);
    assert_eq!(first.body["has_more"], true);
    let second = call(
        &fake,
        Some(&token),
        "conversations.history",
        &[("channel", &channel)],
    )
    .await;
    assert_eq!(second.status, 429);
    let retry: u64 = second
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((59..=60).contains(&retry), "{retry}");
    handle.advance(Duration::from_secs(60));
    let cursor = next_cursor(&first);
    let third = call(
        &fake,
        Some(&token),
        "conversations.history",
        &[("channel", &channel), ("cursor", &cursor)],
    )
    .await;
    assert_eq!(ts_list(&third).len(), 15, "the default limit is 15 too");
    assert_eq!(fake.handle().rate_limited("conversations.history"), 1);
    fake.stop().await.expect("stop");
}

#[tokio::test]
async fn rotation_refresh_gives_a_new_pair_and_revokes_the_old_refresh_token() {
    let fake = FakeSlack::start(SlackConfig {
        rotation: true,
        ..unlimited()
    })
    .await
    .expect("start");
    let handle = fake.handle();
    let grant = handle.grant(ALL_SCOPES);
    let old_refresh = grant.refresh_token.clone().expect("refresh token");
    let refresh = |token: String| {
        let fake = &fake;
        let (id, secret) = (handle.client_id(), handle.client_secret());
        async move {
            call(
                fake,
                None,
                "oauth.v2.access",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &token),
                    ("client_id", &id),
                    ("client_secret", &secret),
                ],
            )
            .await
        }
    };
    handle.expire_access_tokens();
    let fresh = refresh(old_refresh.clone()).await;
    assert!(fresh.ok(), "{}", fresh.body);
    let access = fresh.body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let new_refresh = fresh.body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();
    assert_ne!(access, grant.access_token);
    assert_ne!(new_refresh, old_refresh);
    assert_eq!(fresh.body["token_type"], "user");
    assert_eq!(fresh.body["expires_in"], 43_200);
    assert_eq!(fresh.body["scope"], ALL_SCOPES.join(","));
    assert_eq!(fresh.body["team"]["id"], Value::String(handle.team_id()));
    assert!(call(&fake, Some(&access), "auth.test", &[]).await.ok());
    let reused = refresh(old_refresh).await;
    assert_eq!(reused.error(), "invalid_refresh_token");
    assert!(refresh(new_refresh.clone()).await.ok());
    assert_eq!(handle.refreshes(), 2);
    let wrong = call(
        &fake,
        None,
        "oauth.v2.access",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &new_refresh),
            ("client_id", &handle.client_id()),
            ("client_secret", "nope"),
        ],
    )
    .await;
    assert_eq!(wrong.error(), "bad_client_secret");
    fake.stop().await.expect("stop");

    let plain = FakeSlack::start(unlimited()).await.expect("start");
    let h = plain.handle();
    let g = h.grant(ALL_SCOPES);
    assert!(g.refresh_token.is_none());
    assert!(g.access_token.starts_with("xoxp-"));
    let off = call(
        &plain,
        None,
        "oauth.v2.access",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "xoxe-1-x"),
            ("client_id", &h.client_id()),
            ("client_secret", &h.client_secret()),
        ],
    )
    .await;
    assert_eq!(off.error(), "invalid_grant_type");
}

async fn authorize(fake: &FakeSlack, query: &[(&str, &str)]) -> reqwest::Response {
    client()
        .get(fake.authorize_url())
        .query(query)
        .send()
        .await
        .expect("authorize")
}

fn code_of(response: &reqwest::Response) -> (String, Option<String>) {
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location");
    let url = url::Url::parse(location).expect("a URL");
    assert!(
        location.starts_with("http://localhost:9/callback"),
        "{location}"
    );
    let get = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    (get("code").expect("code"), get("state"))
}

#[tokio::test]
async fn the_code_flow_with_pkce() {
    let fake = FakeSlack::start(SlackConfig {
        rotation: true,
        ..unlimited()
    })
    .await
    .expect("start");
    let handle = fake.handle();
    let (id, secret) = (handle.client_id(), handle.client_secret());
    let redirect = "http://localhost:9/callback";
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let user_scope = ALL_SCOPES.join(",");
    let approved = authorize(
        &fake,
        &[
            ("client_id", &id),
            ("user_scope", &user_scope),
            ("redirect_uri", redirect),
            ("state", "xyz"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(approved.status().as_u16(), 302);
    let (code, state) = code_of(&approved);
    assert_eq!(state.as_deref(), Some("xyz"));
    let exchange = |code: String, verifier: &'static str, redirect: &'static str, basic: bool| {
        let (fake, id, secret) = (&fake, id.clone(), secret.clone());
        async move {
            let mut form = vec![
                ("code", code.clone()),
                ("redirect_uri", redirect.to_owned()),
            ];
            if !verifier.is_empty() {
                form.push(("code_verifier", verifier.to_owned()));
            }
            let mut request = client().post(fake.token_url());
            if basic {
                request = request.basic_auth(&id, Some(&secret));
            } else {
                form.push(("client_id", id));
                form.push(("client_secret", secret));
            }
            let response = request.form(&form).send().await.expect("send");
            response.json::<Value>().await.expect("json")
        }
    };
    let wrong = exchange(
        code.clone(),
        "not-the-verifier-at-all-not-the-verifier",
        redirect,
        true,
    )
    .await;
    assert_eq!(wrong["error"], "invalid_code_verifier");
    let missing = exchange(code.clone(), "", redirect, true).await;
    assert_eq!(missing["error"], "invalid_code_verifier");
    let elsewhere = exchange(code.clone(), verifier, "http://localhost:9/other", true).await;
    assert_eq!(elsewhere["error"], "bad_redirect_uri");
    let ok = exchange(code.clone(), verifier, redirect, true).await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["authed_user"]["id"], Value::String(handle.installer()));
    assert_eq!(ok["authed_user"]["token_type"], "user");
    assert_eq!(
        ok["authed_user"]["scope"],
        Value::String(user_scope.clone())
    );
    assert_eq!(ok["authed_user"]["expires_in"], 43_200);
    assert!(
        ok["authed_user"]["refresh_token"]
            .as_str()
            .is_some_and(|r| r.starts_with("xoxe-1-"))
    );
    assert!(
        ok.get("access_token").is_none(),
        "no bot token without `scope`"
    );
    assert_eq!(ok["enterprise"], Value::Null);
    assert_eq!(ok["is_enterprise_install"], false);
    assert_eq!(ok["app_id"], Value::String(handle.app_id()));
    let token = ok["authed_user"]["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert!(call(&fake, Some(&token), "auth.test", &[]).await.ok());
    let again = exchange(code, verifier, redirect, true).await;
    assert_eq!(again["error"], "invalid_code");

    // Without PKCE, with a bot scope, credentials in fields.
    let approved = authorize(
        &fake,
        &[
            ("client_id", &id),
            ("scope", "channels:read"),
            ("user_scope", "users:read"),
            ("redirect_uri", redirect),
        ],
    )
    .await;
    let (code, state) = code_of(&approved);
    assert_eq!(state, None);
    let ok = exchange(code, "", redirect, false).await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["token_type"], "bot");
    assert!(
        ok["access_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("xoxe.xoxb-"))
    );
    assert_eq!(ok["scope"], "channels:read");
    let bad_client = call(
        &fake,
        None,
        "oauth.v2.access",
        &[("client_id", "1.2"), ("code", "x")],
    )
    .await;
    assert_eq!(bad_client.error(), "invalid_client_id");
    let refused = authorize(
        &fake,
        &[
            ("client_id", "1.2"),
            ("user_scope", "users:read"),
            ("redirect_uri", redirect),
        ],
    )
    .await;
    assert_eq!(refused.status().as_u16(), 400);
    fake.stop().await.expect("stop");
}

#[tokio::test]
async fn injected_faults_come_first() {
    let fake = FakeSlack::start(unlimited()).await.expect("start");
    let handle = fake.handle();
    handle.fail_next("users.list", 1, Fault::Status(503));
    handle.fail_next("users.list", 1, Fault::Error("internal_error"));
    handle.fail_next(
        "users.list",
        1,
        Fault::RateLimited {
            retry_after_secs: 7,
        },
    );
    // Before auth: even without a token.
    let status = call(&fake, None, "users.list", &[]).await;
    assert_eq!(status.status, 503);
    assert_eq!(status.body, serde_json::json!({}));
    let error = call(&fake, None, "users.list", &[]).await;
    assert_eq!(error.error(), "internal_error");
    let limited = call(&fake, None, "users.list", &[]).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("7"));
    assert_eq!(handle.rate_limited("users.list"), 1);
    let after = call(&fake, None, "users.list", &[]).await;
    assert_eq!(after.error(), "not_authed");
    assert_eq!(handle.calls("users.list"), 4);
    fake.stop().await.expect("stop");
}

/// The field names a `.d.ts` response type declares (at any depth).
fn declared(dts: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    for line in dts.lines() {
        let line = line.trim();
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let rest = &line[name.len()..];
        if !name.is_empty() && (rest.starts_with("?:") || rest.starts_with(':')) {
            names.insert(name);
        }
    }
    names
}

fn undeclared(value: &Value, names: &HashSet<String>, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(o) => {
            for (k, v) in o {
                if !names.contains(k) {
                    out.push(format!("{path}.{k}"));
                }
                undeclared(v, names, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) => {
            for v in a {
                undeclared(v, names, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

fn assert_declared(body: &Value, dts: &str, what: &str) {
    let mut names = declared(dts);
    names.extend(declared(include_str!(
        "../../spec/response-types/WebAPICallResult.d.ts"
    )));
    let mut out = Vec::new();
    undeclared(body, &names, what, &mut out);
    assert!(out.is_empty(), "keys not in the SDK's {what} type: {out:?}");
}

#[tokio::test]
async fn emitted_keys_are_declared_in_the_sdk_response_types() {
    let fake = FakeSlack::start(SlackConfig {
        rotation: true,
        ..unlimited()
    })
    .await
    .expect("start");
    let handle = fake.handle();
    let token = handle.grant(ALL_SCOPES).access_token;
    let me = handle.installer();
    let channel = handle.create_conversation(ConversationKind::Public, "shapes");
    let parent = handle.post(&channel, &me, "parent").expect("post");
    handle
        .reply(&channel, &parent, &me, "reply")
        .expect("reply");
    handle.edit(&channel, &parent, "edited").expect("edit");
    handle.react(&channel, &parent, "eyes", &me).expect("react");
    let doomed = handle.post(&channel, &me, "doomed").expect("post");
    handle
        .reply(&channel, &doomed, &me, "keeps it")
        .expect("reply");
    handle.delete(&channel, &doomed).expect("delete");
    handle.create_conversation(ConversationKind::Im, "Eve");
    // A generated workspace brings files.
    let generated = FakeSlack::start(SlackConfig {
        channels: 3,
        messages: 400,
        replies: 40,
        users: 5,
        ..unlimited()
    })
    .await
    .expect("start");
    let gtoken = generated.handle().grant(ALL_SCOPES).access_token;
    let files = generated
        .handle()
        .snapshot()
        .into_iter()
        .find(|m| !m.file_names.is_empty() && !m.is_reply)
        .expect("a message with a file");
    let with_file = call(
        &generated,
        Some(&gtoken),
        "conversations.history",
        &[
            ("channel", &files.channel),
            ("latest", &files.ts),
            ("inclusive", "true"),
            ("limit", "1"),
        ],
    )
    .await;
    assert!(with_file.body["messages"][0]["files"][0]["url_private"].is_string());
    assert_declared(
        &with_file.body,
        include_str!("../../spec/response-types/ConversationsHistoryResponse.d.ts"),
        "ConversationsHistoryResponse",
    );

    let cases = [
        (
            "auth.test",
            vec![],
            include_str!("../../spec/response-types/AuthTestResponse.d.ts"),
        ),
        (
            "conversations.list",
            vec![("types", "public_channel,im")],
            include_str!("../../spec/response-types/ConversationsListResponse.d.ts"),
        ),
        (
            "conversations.info",
            vec![("channel", channel.as_str())],
            include_str!("../../spec/response-types/ConversationsInfoResponse.d.ts"),
        ),
        (
            "conversations.history",
            vec![("channel", channel.as_str())],
            include_str!("../../spec/response-types/ConversationsHistoryResponse.d.ts"),
        ),
        (
            "conversations.replies",
            vec![("channel", channel.as_str()), ("ts", parent.as_str())],
            include_str!("../../spec/response-types/ConversationsRepliesResponse.d.ts"),
        ),
        (
            "users.list",
            vec![],
            include_str!("../../spec/response-types/UsersListResponse.d.ts"),
        ),
        (
            "users.info",
            vec![("user", me.as_str())],
            include_str!("../../spec/response-types/UsersInfoResponse.d.ts"),
        ),
        (
            "users.info",
            vec![("user", "U404")],
            include_str!("../../spec/response-types/UsersInfoResponse.d.ts"),
        ),
    ];
    for (method, params, dts) in cases {
        let answer = call(&fake, Some(&token), method, &params).await;
        assert!(
            answer.ok() || method == "users.info",
            "{method}: {}",
            answer.body
        );
        assert_declared(&answer.body, dts, method);
    }
    let narrow = handle.grant(&["users:read"]).access_token;
    let denied = call(
        &fake,
        Some(&narrow),
        "conversations.history",
        &[("channel", &channel)],
    )
    .await;
    assert_declared(
        &denied.body,
        include_str!("../../spec/response-types/ConversationsHistoryResponse.d.ts"),
        "missing_scope",
    );
    let refreshed = call(
        &fake,
        None,
        "oauth.v2.access",
        &[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                &handle.grant(ALL_SCOPES).refresh_token.unwrap_or_default(),
            ),
            ("client_id", &handle.client_id()),
            ("client_secret", &handle.client_secret()),
        ],
    )
    .await;
    assert!(refreshed.ok());
    let oauth = include_str!("../../spec/response-types/OauthV2AccessResponse.d.ts");
    assert_declared(&refreshed.body, oauth, "OauthV2AccessResponse");
    let approved = authorize(
        &fake,
        &[
            ("client_id", &handle.client_id()),
            ("scope", "channels:read"),
            ("user_scope", "users:read"),
            ("redirect_uri", "http://localhost:9/callback"),
        ],
    )
    .await;
    let (code, _) = code_of(&approved);
    let exchanged = call(
        &fake,
        None,
        "oauth.v2.access",
        &[
            ("code", &code),
            ("redirect_uri", "http://localhost:9/callback"),
            ("client_id", &handle.client_id()),
            ("client_secret", &handle.client_secret()),
        ],
    )
    .await;
    assert!(exchanged.ok(), "{}", exchanged.body);
    assert_declared(&exchanged.body, oauth, "OauthV2AccessResponse");
    fake.stop().await.expect("stop");
    generated.stop().await.expect("stop");
}

#[test]
fn the_spec_copy_keeps_its_licences() {
    assert!(include_str!("../../spec/LICENSE-slack-api-specs").contains("MIT"));
    assert!(include_str!("../../spec/response-types/LICENSE").contains("MIT"));
    assert!("limited-2025".parse::<RateProfile>() == Ok(RateProfile::Limited2025));
    assert_eq!(RateProfile::Marketplace.as_str(), "marketplace");
    assert!("nope".parse::<RateProfile>().is_err());
}

#[tokio::test]
async fn the_standalone_fake() {
    use tributary_sdk::{Fake as _, FakeOptions};
    let running = crate::fake()
        .start(FakeOptions {
            items: 1000,
            ..FakeOptions::default()
        })
        .await
        .expect("start");
    assert_eq!(running.item_name(), "message");
    let truth = running.truth();
    assert_eq!(truth.synced.len(), 1000);
    let link = running.link();
    assert!(link.base_url.ends_with("/api/"));
    assert_eq!(
        link.settings["tokenUrl"],
        Value::String(format!("{}oauth.v2.access", link.base_url))
    );
    assert!(
        link.endpoints
            .iter()
            .any(|(k, v)| k == "authorize" && v.ends_with("/oauth/v2/authorize"))
    );
    let added = running.add_item().expect("an item");
    let after = running.truth();
    assert!(after.synced.contains(&added));
    assert_eq!(after.synced.len(), 1001);
    assert!(running.describe().contains("1001"));
    running.stop().await.expect("stop");
}
