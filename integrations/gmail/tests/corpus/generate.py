#!/usr/bin/env python3
"""Expected results for the Gmail MIME regression corpus, from Python's `email` only.

For every `NN-name.eml` beside this script (a raw RFC 5322 message), writes
`NN-name.json` holding:

- "message": the `Message` resource that Gmail's `users.messages.get?format=full`
  returns for it, following the `Message` / `MessagePart` / `MessagePartBody` schemas of
  the Gmail discovery document: `payload` is the MIME tree, each part with `partId`
  (`""` for the root, then `0`, `1`, `1.0`, ...), `mimeType`, `filename`, `headers`
  (raw values: unfolded, not decoded), `body` (`size`, and `data`: base64url of the
  bytes after transfer decoding, before charset decoding; or `attachmentId` for
  attachment parts) and `parts`;
- "expected": the content fields the mapping promises, worked out here with Python's
  `email` package and nothing of ours: the decoded subject, the first `From` and every
  `To`/`Cc` address (display name and address), the `Date` as written, the body text
  (see `expected_body`), the attachments (file names and types), and how many parts lie
  below the depth cap.

Where Gmail's exact behaviour is not documented, the script says what it assumes:
- 8-bit header bytes reach the JSON as UTF-8 when they are valid UTF-8, else read as
  Windows-1252 (a JSON string cannot carry raw bytes);
- an attachment part (a file name, `Content-Disposition: attachment`, or an attached
  `message/rfc822`) carries an `attachmentId` instead of inline `data`; an attached
  message also carries the enclosed message as its one child part;
- `message/*` parts other than `message/rfc822` (delivery reports, read receipts) are
  leaves whose data is their body (as Python writes it back: line breaks may differ);
- file names are decoded (RFC 2231 and RFC 2047), as Gmail shows them.

The rules for the expected body restate the mapping's documentation
(`integrations/gmail/src/mime.rs`), not its code: the first non-empty `text/plain`
part outside attachments, else the first `text/html` part as text, else the text of
the first attached message found the same way; the payload itself is always read; at
most 32 levels of nesting are read.

Run `python3 generate.py` to rewrite the JSON files after adding or changing a
message, and `python3 generate.py --print` to print what it would write (a JSON object
from file name to file text) without writing; the Rust test `corpus.rs` uses the
latter to check that the committed files are what the script produces now.
The standard library only; Python 3.10, 3.11, 3.12 and 3.13 give the same output.
"""

import base64
import codecs
import email
import email.header
import email.policy
import email.utils
import html
import html.parser
import json
import os
import sys
from email.parser import BytesParser

HERE = os.path.dirname(os.path.abspath(__file__))

# The mapping reads this many levels of MIME nesting, the payload being level 1.
MAX_MIME_DEPTH = 32
NO_SUBJECT = "(No Subject)"
SNIPPET_CHARS = 120
# Characters the HTML-to-text conversion drops: zero-width spaces and joiners, the
# byte-order mark and soft hyphens.
INVISIBLE = {"\u200b", "\u200c", "\u200d", "\ufeff", "\xad"}


def windows_1252(data):
    """Windows-1252 as browsers (and encoding_rs) read it: the five bytes Python's
    codec leaves undefined map to the C1 controls of the same value."""
    return data.decode("cp1252", errors="c1-controls")


def _c1_controls(error):
    bad = error.object[error.start:error.end]
    return "".join(chr(b) for b in bad), error.end


codecs.register_error("c1-controls", _c1_controls)


def header_text(value):
    """A raw header value as Gmail's JSON carries it: 8-bit bytes (kept by the parser
    as surrogate escapes) as UTF-8 if valid, else Windows-1252; then unfolded."""
    data = value.encode("ascii", "surrogateescape")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = windows_1252(data)
    return text.replace("\r\n", "").replace("\n", "").replace("\r", "").strip()


def is_message(part):
    return part.get_content_type() == "message/rfc822"


def filename_of(part):
    name = part.get_filename() or ""
    if "=?" in name:
        try:
            name = str(email.header.make_header(email.header.decode_header(name)))
        except (LookupError, ValueError, UnicodeDecodeError):
            pass
    return name


def is_attachment(part):
    return (
        is_message(part)
        or filename_of(part).strip() != ""
        or part.get_content_disposition() == "attachment"
    )


def children(part):
    """The child parts as Gmail lists them: a multipart's parts, the enclosed message
    of a message/rfc822; none for anything else (Python also splits other message/*
    types, which Gmail serves as leaves)."""
    if not part.is_multipart():
        return []
    mime_type = part.get_content_type()
    if mime_type.startswith("multipart/") or mime_type == "message/rfc822":
        return list(part.get_payload())
    return []


def body_bytes(part):
    """A leaf's body after transfer decoding."""
    if part.is_multipart():
        # A message/* leaf that Python split: its body as written.
        raw = part.as_bytes(policy=email.policy.compat32)
        for separator in (b"\r\n\r\n", b"\n\n"):
            at = raw.find(separator)
            if at >= 0:
                return raw[at + len(separator):]
        return b""
    data = part.get_payload(decode=True)
    return data if data is not None else b""


def b64url(data):
    return base64.urlsafe_b64encode(data).decode("ascii")


def part_json(part, part_id):
    child_id = (lambda n: str(n)) if part_id == "" else (lambda n: "%s.%d" % (part_id, n))
    kids = children(part)
    headers = [{"name": name, "value": header_text(value)} for name, value in part.raw_items()]
    result = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": filename_of(part),
        "headers": headers,
    }
    attachment_id = "att-" + (part_id or "root")
    if is_message(part):
        inner = kids[0].as_bytes(policy=email.policy.compat32) if kids else b""
        result["body"] = {"size": len(inner), "attachmentId": attachment_id}
    elif kids:
        result["body"] = {"size": 0}
    else:
        data = body_bytes(part)
        if is_attachment(part):
            result["body"] = {"size": len(data), "attachmentId": attachment_id}
        elif data:
            result["body"] = {"size": len(data), "data": b64url(data)}
        else:
            result["body"] = {"size": 0}
    if kids:
        result["parts"] = [part_json(kid, child_id(n)) for n, kid in enumerate(kids)]
    return result


def decode_body(part):
    """A text part's text: its declared charset; UTF-8, US-ASCII and a missing or
    unknown charset read as UTF-8 when valid and as Windows-1252 otherwise."""
    data = body_bytes(part)
    charset = part.get_content_charset()
    if charset not in (None, "utf-8", "utf8", "us-ascii", "ascii"):
        try:
            return data.decode(charset, errors="replace")
        except LookupError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return windows_1252(data)


def walk(root, level, enter):
    """(part, level) in document order, within the cap; into a part's children only
    when `enter(part)`."""
    stack = [(root, level)]
    while stack:
        part, level = stack.pop()
        yield part, level
        if level < MAX_MIME_DEPTH and enter(part):
            stack.extend((kid, level + 1) for kid in reversed(children(part)))


def own_text(scope, level, mime_type):
    """The first non-blank `mime_type` part of `scope` outside attachments. Attachment
    parts have no inline data, so they have no text either."""
    in_scope = lambda p: p is scope or not is_attachment(p)  # noqa: E731
    for part, _ in walk(scope, level, in_scope):
        if not in_scope(part) or part.get_content_type() != mime_type:
            continue
        if is_attachment(part) or children(part):
            continue
        text = decode_body(part)
        if text.strip():
            return text
    return None


class HtmlText(html.parser.HTMLParser):
    """The text of an HTML document: character data, references decoded, without
    comments and the contents of script, style, title and template."""

    SKIPPED = {"script", "style", "title", "template"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.chunks = []
        self.skipping = None

    def handle_starttag(self, tag, attrs):
        if self.skipping is None and tag in self.SKIPPED:
            self.skipping = tag

    def handle_endtag(self, tag):
        if tag == self.skipping:
            self.skipping = None

    def handle_data(self, data):
        if self.skipping is None:
            self.chunks.append(data)


def html_compact(document):
    """The HTML's text with all whitespace and invisible characters removed: layout
    (line breaks, spacing) is the mapping's own choice, the characters are not."""
    parser = HtmlText()
    parser.feed(document)
    parser.close()
    text = "".join(parser.chunks)
    return "".join(c for c in text if not c.isspace() and c not in INVISIBLE)


def attached_messages(scope, level):
    in_scope = lambda p: p is scope or not is_attachment(p)  # noqa: E731
    return [(p, l) for p, l in walk(scope, level, in_scope) if not in_scope(p) and is_message(p)]


def expected_body(payload):
    """{"from": "text/plain", "text": ...}, {"from": "text/html", "compact": ...} or
    {"from": null, "text": ""}."""
    scopes = [(payload, 1)]
    while scopes:
        scope, level = scopes.pop()
        text = own_text(scope, level, "text/plain")
        if text is not None:
            text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
            return {"from": "text/plain", "text": text}
        document = own_text(scope, level, "text/html")
        if document is not None:
            compact = html_compact(document)
            if compact:
                return {"from": "text/html", "compact": compact}
        scopes.extend(reversed(attached_messages(scope, level)))
    return {"from": None, "text": ""}


def expected_attachments(payload):
    found = []
    for part, _ in walk(payload, 1, lambda p: not is_attachment(p)):
        if is_attachment(part):
            found.append({"filename": filename_of(part), "mimeType": part.get_content_type()})
    return found


def skipped_parts(payload):
    count = 0
    stack = [(payload, 1)]
    while stack:
        part, level = stack.pop()
        count += level > MAX_MIME_DEPTH
        stack.extend((kid, level + 1) for kid in children(part))
    return count


def addresses(values, name):
    """Every address of every line, in order: display name and address."""
    found = []
    for value in values:
        header = email.policy.default.header_factory(name, value)
        for address in header.addresses:
            found.append({"name": address.display_name, "address": address.addr_spec})
    return found


def collapse(text):
    return " ".join(text.split())


def convert(name, raw):
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    payload = part_json(message, "")
    top = payload["headers"]

    def values(header):
        return [h["value"] for h in top if h["name"].lower() == header.lower()]

    subjects = values("Subject")
    subject = ""
    if subjects:
        subject = collapse(str(email.policy.default.header_factory("Subject", subjects[0])))
    dates = values("Date")
    internal_date = "1700000000000"
    if dates:
        try:
            internal_date = str(int(email.utils.parsedate_to_datetime(dates[0]).timestamp() * 1000))
        except (TypeError, ValueError, IndexError):
            pass
    body = expected_body(message)
    snippet_source = body.get("text") or ""
    snippet = collapse(snippet_source)[:SNIPPET_CHARS]
    labels = ["INBOX", "UNREAD"]
    gmail = {
        "id": name,
        "threadId": "thread-" + name,
        "labelIds": labels,
        "snippet": html.escape(snippet, quote=True),
        "historyId": "1",
        "internalDate": internal_date,
        "sizeEstimate": len(raw),
        "payload": payload,
    }
    expected = {
        "subject": subject or NO_SUBJECT,
        "from": addresses(values("From")[:1], "From"),
        "to": addresses(values("To"), "To"),
        "cc": addresses(values("Cc"), "Cc"),
        "date": dates[0] if dates else "",
        "body": body,
        "attachments": expected_attachments(message),
        "skippedParts": skipped_parts(message),
        "snippet": snippet,
        "labelIds": labels,
        "timestampMillis": int(internal_date),
    }
    return {"message": gmail, "expected": expected}


def generate():
    files = {}
    for entry in sorted(os.listdir(HERE)):
        if not entry.endswith(".eml"):
            continue
        name = entry[: -len(".eml")]
        with open(os.path.join(HERE, entry), "rb") as f:
            raw = f.read()
        document = convert(name, raw)
        files[name + ".json"] = json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    return files


def main():
    files = generate()
    if sys.argv[1:] == ["--print"]:
        sys.stdout.buffer.write(json.dumps(files, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        return
    if sys.argv[1:]:
        sys.exit("usage: generate.py [--print]")
    for name, text in files.items():
        with open(os.path.join(HERE, name), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    print("wrote %d files" % len(files))


if __name__ == "__main__":
    main()
