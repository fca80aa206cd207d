//! Reports that arrive by mail: an RFC 5322 message (an `.eml` file, an IMAP message) or an
//! mbox file of them. The reports are the message's attachments (`.csv`, `.csv.gz`, `.zip`,
//! JSON, text lists, forwarded messages' attachments in turn), or, when it has none, its
//! text body (inline CSV, X-ARF and similar mails). Parsing the MIME structure is
//! mail-parser's (Stalwart's, fuzzed upstream); deciding which parts are reports is ours.

use bytes::Bytes;

/// A part of a mail that may be a report.
#[derive(Debug, Clone)]
pub struct MailPart {
    /// The attachment's file name, else one made from the part's type (`part-2.csv`).
    pub name: String,
    pub data: Bytes,
}

/// What a mail holds.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub parts: Vec<MailPart>,
    /// Parts passed over, with why (signatures, images, …), for the log.
    pub skipped: Vec<String>,
}

/// Extensions of parts that are never reports.
const NOT_REPORTS: &[&str] =
    &["asc", "sig", "p7s", "p7m", "png", "jpg", "jpeg", "gif", "pdf", "html", "htm", "ics", "vcf"];

/// Nested forwards deeper than this are not followed.
const MAX_DEPTH: usize = 4;

/// The parts of `raw` that may be reports; `None` when it is not a mail at all.
pub fn parse(raw: &[u8]) -> Option<Mail> {
    // mail-parser 0.11 has a `debug_assert!(false)` on one malformed nesting (found by our
    // fuzz target): builds with debug assertions (tests) would panic where release builds
    // go on. Caught here so a mail never takes its job down in any build.
    let msg = std::panic::catch_unwind(|| mail_parser::MessageParser::default().parse(raw)).ok()??;
    let mut mail = Mail {
        message_id: msg.message_id().map(str::to_string),
        subject: msg.subject().map(str::to_string),
        from: msg.from().and_then(|a| a.first()).and_then(|a| a.address()).map(str::to_string),
        ..Mail::default()
    };
    collect(&msg, &mut mail, 0);
    if mail.parts.is_empty() {
        // No attachment: the text body is the report (inline CSV, a list, an X-ARF text).
        if let Some(body) = msg.body_text(0)
            && !body.trim().is_empty()
        {
            mail.parts.push(MailPart { name: "body.txt".into(), data: Bytes::from(body.into_owned()) });
        }
    }
    Some(mail)
}

fn collect(msg: &mail_parser::Message<'_>, mail: &mut Mail, depth: usize) {
    use mail_parser::{MimeHeaders, PartType};
    for (i, part) in msg.parts.iter().enumerate() {
        let is_body = msg.text_body.contains(&(i as _)) || msg.html_body.contains(&(i as _));
        let named = part.attachment_name().map(str::to_string);
        let (ty, sub) = part
            .content_type()
            .map(|c| (c.ctype().to_ascii_lowercase(), c.subtype().unwrap_or("").to_ascii_lowercase()))
            .unwrap_or_default();
        let data: &[u8] = match &part.body {
            PartType::Multipart(_) => continue,
            PartType::Message(inner) => {
                if depth < MAX_DEPTH {
                    collect(inner, mail, depth + 1);
                } else {
                    mail.skipped.push(format!("forwarded message nested deeper than {MAX_DEPTH}"));
                }
                continue;
            }
            PartType::Text(t) | PartType::Html(t) => t.as_bytes(),
            PartType::Binary(b) | PartType::InlineBinary(b) => b.as_ref(),
        };
        // The body text of a mail with attachments is the cover letter, unless it is a
        // named or typed report itself.
        let typed = matches!(
            (ty.as_str(), sub.as_str()),
            ("text", "csv")
                | ("application", "csv")
                | ("application", "json")
                | ("application", "gzip")
                | ("application", "x-gzip")
                | ("application", "zip")
                | ("application", "x-zip-compressed")
        );
        if is_body && named.is_none() && !typed {
            continue;
        }
        let name = match named {
            Some(n) => n,
            None if typed => format!("part-{i}.{}", extension_for(&sub)),
            None => {
                mail.skipped.push(format!("part {i} ({ty}/{sub}): no file name"));
                continue;
            }
        };
        let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
        if NOT_REPORTS.contains(&ext.as_str()) || ty == "image" {
            mail.skipped.push(format!("{name}: not a report ({ty}/{sub})"));
            continue;
        }
        if data.is_empty() {
            mail.skipped.push(format!("{name}: empty"));
            continue;
        }
        mail.parts.push(MailPart { name: sanitise(&name), data: Bytes::copy_from_slice(data) });
    }
}

fn extension_for(sub: &str) -> &'static str {
    match sub {
        "json" => "json",
        "gzip" | "x-gzip" => "gz",
        "zip" | "x-zip-compressed" => "zip",
        _ => "csv",
    }
}

/// An attachment's name as a plain file name: no directories, no control characters.
fn sanitise(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let s: String = base.chars().filter(|c| !c.is_control()).collect();
    if s.trim().is_empty() || s == "." || s == ".." { "attachment".into() } else { s }
}

/// Whether `head` (the first bytes of a file) is a mail message (RFC 5322 headers).
pub fn looks_like_mail(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&head[..head.len().min(8192)]);
    let mut lines = text.lines();
    let is_header = |l: &str| {
        l.split_once(':').is_some_and(|(k, _)| {
            !k.is_empty() && k.len() < 78 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
    };
    if !lines.next().is_some_and(is_header) {
        return false;
    }
    // A mail's header block names its sender or its route; a "key: value" list does not.
    text.lines().take_while(|l| !l.is_empty()).any(|l| {
        let l = l.to_ascii_lowercase();
        ["from:", "received:", "return-path:", "delivered-to:", "message-id:"]
            .iter()
            .any(|h| l.starts_with(h))
    })
}

/// Whether `head` is an mbox file (messages each after a `From ` separator line).
pub fn looks_like_mbox(head: &[u8]) -> bool {
    head.starts_with(b"From ") && head.iter().take(1024).any(|&b| b == b'\n')
}

/// The messages of an mbox file (mboxrd: `>From ` lines unescaped), each as raw bytes.
pub fn mbox_messages(data: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut started = false;
    for line in data.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"From ") {
            if started {
                out.push(Bytes::from(std::mem::take(&mut cur)));
            }
            started = true;
            continue;
        }
        if !started {
            continue;
        }
        // mboxrd escapes ">From " (any number of '>') by one more '>'.
        let gt = line.iter().take_while(|&&b| b == b'>').count();
        if gt > 0 && line[gt..].starts_with(b"From ") {
            cur.extend_from_slice(&line[1..]);
        } else {
            cur.extend_from_slice(line);
        }
    }
    if started {
        out.push(Bytes::from(cur));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "\"timestamp\",\"ip\",\"port\"\n\"2026-11-24 00:00:01\",\"192.0.2.1\",\"80\"\n";

    fn mail_with_attachment(name: &str, body: &[u8]) -> Vec<u8> {
        use std::fmt::Write;
        let mut b64 = String::new();
        for chunk in body.chunks(57) {
            let _ = writeln!(
                b64,
                "{}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, chunk)
            );
        }
        format!(
            "From: Shadowserver <autoreports@shadowserver.org>\r\nTo: cert@example.org\r\nSubject: [Shadowserver] report\r\nMessage-ID: <r1@example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nHello, please find attached.\r\n--b1\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}--b1\r\nContent-Type: application/pgp-signature; name=\"signature.asc\"\r\n\r\n-----BEGIN PGP SIGNATURE-----\r\n--b1--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn attachments_are_the_reports_and_the_cover_letter_is_not() {
        let raw = mail_with_attachment("2026-11-24-event4_sinkhole-example-geo.csv", CSV.as_bytes());
        assert!(looks_like_mail(&raw));
        let m = parse(&raw).unwrap();
        assert_eq!(m.message_id.as_deref(), Some("r1@example"));
        assert_eq!(m.from.as_deref(), Some("autoreports@shadowserver.org"));
        assert_eq!(m.parts.len(), 1, "{:?}", m.parts.iter().map(|p| &p.name).collect::<Vec<_>>());
        assert_eq!(m.parts[0].name, "2026-11-24-event4_sinkhole-example-geo.csv");
        assert_eq!(&m.parts[0].data[..], CSV.as_bytes());
        assert!(m.skipped.iter().any(|s| s.contains("signature.asc")), "{:?}", m.skipped);
    }

    #[test]
    fn a_mail_without_attachments_is_its_body() {
        let raw = format!("From: a@example.org\r\nSubject: list\r\n\r\n{CSV}");
        let m = parse(raw.as_bytes()).unwrap();
        assert_eq!(m.parts.len(), 1);
        assert_eq!(m.parts[0].name, "body.txt");
        assert!(String::from_utf8_lossy(&m.parts[0].data).contains("192.0.2.1"));
    }

    #[test]
    fn attachment_names_cannot_climb_directories() {
        let raw = mail_with_attachment("../../etc/passwd.csv", CSV.as_bytes());
        assert_eq!(parse(&raw).unwrap().parts[0].name, "passwd.csv");
    }

    #[test]
    fn mbox_splits_and_unescapes() {
        let a = mail_with_attachment("a.csv", CSV.as_bytes());
        let mut mbox = b"From MAILER-DAEMON Thu Nov 24 00:00:00 2026\n".to_vec();
        mbox.extend_from_slice(&a);
        mbox.extend_from_slice(
            b"\nFrom someone Thu Nov 24 00:00:01 2026\nFrom: b@example.org\nSubject: x\n\n>From the desk\n",
        );
        assert!(looks_like_mbox(&mbox) && !looks_like_mail(&mbox));
        let msgs = mbox_messages(&mbox);
        assert_eq!(msgs.len(), 2);
        assert!(parse(&msgs[0]).unwrap().parts[0].name == "a.csv");
        assert!(String::from_utf8_lossy(&msgs[1]).contains("\nFrom the desk"));
    }

    #[test]
    fn reports_are_not_mistaken_for_mail() {
        assert!(!looks_like_mail(CSV.as_bytes()));
        assert!(!looks_like_mail(b"# Spamhaus DROP List\n1.2.3.0/24 ; SBL1\n"));
        assert!(!looks_like_mail(b"{\"type\": \"bundle\"}"));
        assert!(!looks_like_mail(b"Name: value\nOther: thing\n"));
    }
}
