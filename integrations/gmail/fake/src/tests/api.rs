//! Each endpoint's happy path and error paths.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{SIMPLE, assert_google_error, reply, reply_to_simple, setup};

fn decode(data: &Value) -> Vec<u8> {
    URL_SAFE
        .decode(data.as_str().expect("base64 field is a string"))
        .expect("padded base64url")
}

#[tokio::test]
async fn profile_and_labels() {
    let s = setup(30).await;
    let profile = s.get("profile").await;
    assert_eq!(profile.status, StatusCode::OK);
    assert_eq!(profile.json["emailAddress"], "tester@example.com");
    assert_eq!(profile.json["messagesTotal"], 30);
    assert!(
        profile.json["threadsTotal"]
            .as_u64()
            .is_some_and(|t| t > 0 && t <= 30)
    );
    assert_eq!(
        profile.json["historyId"],
        Value::String(s.fake.history_id().to_string())
    );

    // The mailbox address works as userId as well as `me`.
    let by_address = s
        .http
        .get(s.url("gmail/v1/users/tester@example.com/profile"))
        .bearer_auth(&s.token)
        .send()
        .await
        .expect("request is sent");
    assert_eq!(by_address.status(), StatusCode::OK);
    let other = s
        .http
        .get(s.url("gmail/v1/users/someone@example.org/profile"))
        .bearer_auth(&s.token)
        .send()
        .await
        .expect("request is sent");
    assert_google_error(&reply(other).await, 403, "PERMISSION_DENIED");

    let labels = s.get("labels").await;
    let labels = labels.json["labels"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let inbox = labels.iter().find(|l| l["id"] == "INBOX").expect("INBOX");
    assert_eq!(inbox["type"], "system");
    let work = labels
        .iter()
        .find(|l| l["name"] == "Work")
        .expect("a user label");
    assert_eq!(work["type"], "user");
    assert_eq!(work["id"], "Label_1");
}

#[tokio::test]
async fn requests_without_a_valid_token_are_unauthenticated() {
    let s = setup(1).await;
    let anonymous = s
        .http
        .get(s.api("profile"))
        .send()
        .await
        .expect("request is sent");
    let anonymous = reply(anonymous).await;
    assert_eq!(
        assert_google_error(&anonymous, 401, "UNAUTHENTICATED"),
        "authError"
    );
    assert!(anonymous.headers.contains_key("www-authenticate"));
    let forged = s
        .http
        .get(s.api("profile"))
        .bearer_auth("ya29.not-a-token")
        .send()
        .await
        .expect("request is sent");
    assert_google_error(&reply(forged).await, 401, "UNAUTHENTICATED");
    // The token also works as the `access_token` parameter.
    let by_parameter = s
        .http
        .get(format!("{}?access_token={}", s.api("profile"), s.token))
        .send()
        .await
        .expect("request is sent");
    assert_eq!(by_parameter.status(), StatusCode::OK);
    assert_eq!(s.fake.counters().unauthorized, 2);
}

#[tokio::test]
async fn unknown_paths_and_methods_get_google_errors() {
    let s = setup(0).await;
    let missing = s.get("nothing-here").await;
    assert_google_error(&missing, 404, "NOT_FOUND");
    let wrong_method = s
        .http
        .put(s.api("profile"))
        .bearer_auth(&s.token)
        .send()
        .await
        .expect("request is sent");
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn get_message_in_every_format() {
    let s = setup(0).await;
    let id = s
        .fake
        .insert_raw(SIMPLE.as_bytes(), &["INBOX", "UNREAD"])
        .expect("message is inserted");

    let full = s.get(&format!("messages/{id}")).await;
    assert_eq!(full.status, StatusCode::OK, "{}", full.text);
    assert_eq!(full.json["id"], id.as_str());
    assert_eq!(full.json["threadId"], id.as_str());
    assert_eq!(full.json["labelIds"], json!(["INBOX", "UNREAD"]));
    assert_eq!(full.json["snippet"], "Just saying hello.");
    assert_eq!(full.json["sizeEstimate"], SIMPLE.len());
    assert!(
        full.json["internalDate"]
            .as_str()
            .is_some_and(|d| d.parse::<i64>().is_ok())
    );
    assert!(
        full.json["historyId"]
            .as_str()
            .is_some_and(|h| h.parse::<u64>().is_ok())
    );
    let payload = &full.json["payload"];
    assert_eq!(payload["partId"], "");
    assert_eq!(payload["mimeType"], "text/plain");
    assert_eq!(payload["filename"], "");
    assert_eq!(decode(&payload["body"]["data"]), b"Just saying hello.\r\n");
    assert!(
        payload["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|h| h["name"] == "Subject" && h["value"] == "Hello there")
    );
    assert!(full.json.get("raw").is_none());

    let raw = s.get(&format!("messages/{id}?format=raw")).await;
    assert_eq!(decode(&raw.json["raw"]), SIMPLE.as_bytes());
    assert!(raw.json.get("payload").is_none());
    // Google's documentation writes the enum upper-case; both are accepted.
    let upper = s.get(&format!("messages/{id}?format=RAW")).await;
    assert_eq!(upper.json["raw"], raw.json["raw"]);

    let metadata = s
        .get(&format!(
            "messages/{id}?format=metadata&metadataHeaders=subject&metadataHeaders=From"
        ))
        .await;
    assert_eq!(
        metadata.json["payload"]["headers"],
        json!([
            {"name": "From", "value": "Ann <ann@example.com>"},
            {"name": "Subject", "value": "Hello there"},
        ])
    );
    assert!(metadata.json["payload"].get("body").is_none());

    let minimal = s.get(&format!("messages/{id}?format=minimal")).await;
    assert!(minimal.json.get("payload").is_none() && minimal.json.get("raw").is_none());
    assert_eq!(minimal.json["snippet"], "Just saying hello.");

    let bad_format = s.get(&format!("messages/{id}?format=html")).await;
    assert_google_error(&bad_format, 400, "INVALID_ARGUMENT");
    let bad_id = s.get("messages/not-an-id").await;
    assert_google_error(&bad_id, 400, "INVALID_ARGUMENT");
    let missing = s.get("messages/123abc").await;
    assert_eq!(assert_google_error(&missing, 404, "NOT_FOUND"), "notFound");
}

#[tokio::test]
async fn insert_and_import_take_raw_rfc822_in_every_form() {
    let s = setup(0).await;
    // JSON form on the metadata path, with labels.
    let raw = URL_SAFE_NO_PAD.encode(SIMPLE);
    let inserted = s
        .post("messages", json!({"raw": raw, "labelIds": ["INBOX"]}))
        .await;
    assert_eq!(inserted.status, StatusCode::OK, "{}", inserted.text);
    let first = inserted.json["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(inserted.json["labelIds"], json!(["INBOX"]));

    // Simple media upload: the body is the message itself.
    let media = s
        .http
        .post(s.url("upload/gmail/v1/users/me/messages?uploadType=media"))
        .bearer_auth(&s.token)
        .header("content-type", "message/rfc822")
        .body(reply_to_simple(1))
        .send()
        .await
        .expect("request is sent");
    let media = reply(media).await;
    assert_eq!(media.status, StatusCode::OK, "{}", media.text);
    // The reply joins the thread of the message it names.
    assert_eq!(media.json["threadId"], first.as_str());
    assert!(media.json.get("labelIds").is_none());

    // Multipart upload: JSON metadata, then the message.
    let boundary = "fake_boundary_42";
    let body = format!(
        "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{}\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n{}\r\n--{boundary}--\r\n",
        json!({"labelIds": ["INBOX", "Label_1"]}),
        reply_to_simple(2)
    );
    let multipart = s
        .http
        .post(s.url("upload/gmail/v1/users/me/messages/import?uploadType=multipart"))
        .bearer_auth(&s.token)
        .header(
            "content-type",
            format!("multipart/related; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("request is sent");
    let multipart = reply(multipart).await;
    assert_eq!(multipart.status, StatusCode::OK, "{}", multipart.text);
    assert_eq!(multipart.json["labelIds"], json!(["INBOX", "Label_1"]));
    let imported = multipart.json["id"].as_str().unwrap_or_default().to_owned();
    // import takes internalDate from the Date header by default.
    let got = s.get(&format!("messages/{imported}?format=minimal")).await;
    assert_eq!(got.json["internalDate"], "1727863200000");
    let stored = s.fake.raw(&imported).expect("stored");
    assert_eq!(stored, reply_to_simple(2).into_bytes());

    // An explicit threadId puts an unrelated message in that thread.
    let unrelated = "Subject: Something else\r\n\r\nbody\r\n";
    let threaded = s
        .post(
            "messages",
            json!({"raw": URL_SAFE_NO_PAD.encode(unrelated), "threadId": first}),
        )
        .await;
    assert_eq!(
        threaded.json["threadId"],
        first.as_str(),
        "{}",
        threaded.text
    );
    let bad_thread = s
        .post(
            "messages",
            json!({"raw": URL_SAFE_NO_PAD.encode(unrelated), "threadId": "zz"}),
        )
        .await;
    assert_google_error(&bad_thread, 400, "INVALID_ARGUMENT");

    // Errors: no raw, undecodable raw, not a message, unknown label, bad media type.
    let missing = s.post("messages", json!({"labelIds": ["INBOX"]})).await;
    assert_google_error(&missing, 400, "INVALID_ARGUMENT");
    let undecodable = s.post("messages", json!({"raw": "***"})).await;
    assert_google_error(&undecodable, 400, "INVALID_ARGUMENT");
    let not_mail = s
        .post("messages", json!({"raw": URL_SAFE_NO_PAD.encode("")}))
        .await;
    assert_google_error(&not_mail, 400, "INVALID_ARGUMENT");
    let bad_label = s
        .post("messages/import", json!({"raw": raw, "labelIds": ["NOPE"]}))
        .await;
    assert_google_error(&bad_label, 400, "INVALID_ARGUMENT");
    let not_json = s
        .http
        .post(s.api("messages"))
        .bearer_auth(&s.token)
        .body("{not json")
        .send()
        .await
        .expect("request is sent");
    assert_google_error(&reply(not_json).await, 400, "INVALID_ARGUMENT");
    let wrong_type = s
        .http
        .post(s.url("upload/gmail/v1/users/me/messages?uploadType=media"))
        .bearer_auth(&s.token)
        .header("content-type", "text/plain")
        .body(SIMPLE)
        .send()
        .await
        .expect("request is sent");
    assert_google_error(&reply(wrong_type).await, 400, "INVALID_ARGUMENT");
    assert_eq!(s.fake.snapshot().len(), 4);
}

#[tokio::test]
async fn modify_trash_untrash_and_delete() {
    let s = setup(0).await;
    let id = s
        .fake
        .insert_raw(SIMPLE.as_bytes(), &["INBOX", "UNREAD"])
        .expect("message is inserted");

    let modified = s
        .post(
            &format!("messages/{id}/modify"),
            json!({"addLabelIds": ["STARRED", "Label_2"], "removeLabelIds": ["UNREAD"]}),
        )
        .await;
    assert_eq!(modified.status, StatusCode::OK, "{}", modified.text);
    assert_eq!(
        modified.json["labelIds"],
        json!(["INBOX", "STARRED", "Label_2"])
    );
    let bad_label = s
        .post(
            &format!("messages/{id}/modify"),
            json!({"addLabelIds": ["Label_99"]}),
        )
        .await;
    assert_google_error(&bad_label, 400, "INVALID_ARGUMENT");

    let trashed = s.post(&format!("messages/{id}/trash"), json!({})).await;
    assert_eq!(
        trashed.json["labelIds"],
        json!(["INBOX", "TRASH", "STARRED", "Label_2"])
    );
    // Trashed mail leaves the default listing.
    assert!(s.list_all("").await.is_empty());
    assert_eq!(s.list_all("includeSpamTrash=true").await, vec![id.clone()]);
    let untrashed = s.post(&format!("messages/{id}/untrash"), json!({})).await;
    assert_eq!(
        untrashed.json["labelIds"],
        json!(["INBOX", "STARRED", "Label_2"])
    );

    let deleted = s.delete(&format!("messages/{id}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.text.is_empty());
    let gone = s.get(&format!("messages/{id}")).await;
    assert_google_error(&gone, 404, "NOT_FOUND");
    let again = s.delete(&format!("messages/{id}")).await;
    assert_google_error(&again, 404, "NOT_FOUND");
    let trash_missing = s.post(&format!("messages/{id}/trash"), json!({})).await;
    assert_google_error(&trash_missing, 404, "NOT_FOUND");
    assert!(s.fake.snapshot().is_empty());
}

#[tokio::test]
async fn attachments_are_fetched_by_id() {
    let s = setup(60).await;
    // Find a generated message with an attachment.
    let mut found = None;
    for id in s.fake.ids_newest_first() {
        let message = s.get(&format!("messages/{id}")).await;
        let parts = message.json["payload"]["parts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(part) = parts
            .iter()
            .find(|p| p["body"]["attachmentId"].is_string() && p["mimeType"] == "application/pdf")
        {
            found = Some((id, part.clone()));
            break;
        }
    }
    let (id, part) = found.expect("60 generated messages include a pdf attachment");
    let attachment_id = part["body"]["attachmentId"].as_str().unwrap_or_default();
    assert!(part["body"].get("data").is_none());
    assert!(!part["filename"].as_str().unwrap_or_default().is_empty());

    let attachment = s
        .get(&format!("messages/{id}/attachments/{attachment_id}"))
        .await;
    assert_eq!(attachment.status, StatusCode::OK, "{}", attachment.text);
    let bytes = decode(&attachment.json["data"]);
    assert!(bytes.starts_with(b"%PDF-1.4"));
    assert_eq!(attachment.json["size"], bytes.len());
    assert_eq!(part["body"]["size"], bytes.len());

    let bogus = s.get(&format!("messages/{id}/attachments/nonsense")).await;
    assert_google_error(&bogus, 400, "INVALID_ARGUMENT");
    // An attachment id only works with its own message.
    let other = s
        .fake
        .ids_newest_first()
        .into_iter()
        .find(|other| *other != id)
        .unwrap_or_default();
    let elsewhere = s
        .get(&format!("messages/{other}/attachments/{attachment_id}"))
        .await;
    assert_google_error(&elsewhere, 404, "NOT_FOUND");
}

#[tokio::test]
async fn standalone_info_has_credentials_and_settings() {
    let s = setup(0).await;
    let info = s.fake.standalone_info();
    assert_eq!(
        info["credentials"]["clientId"],
        "fake-client-id.apps.googleusercontent.com"
    );
    assert_eq!(info["credentials"]["refreshToken"], "1//fake-refresh-token");
    assert_eq!(info["settings"]["baseUrl"], s.fake.base_url());
    assert!(s.fake.base_url().ends_with('/'));
    assert_eq!(info["settings"]["tokenUrl"], s.fake.token_url());
    // Debug output never shows the secret or the refresh token.
    let debug = format!(
        "{:?} {:?}",
        s.fake.credentials(),
        super::GmailConfig::default()
    );
    assert!(!debug.contains("fake-client-secret") && !debug.contains("1//fake"));
}
