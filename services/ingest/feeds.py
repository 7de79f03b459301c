"""News feeds (RSS 2.0, RSS 1.0/RDF, Atom) read into the articles a client would submit.

Feeds come from servers we do not control, so parsing never raises: a document that is not
well-formed, or that declares entities (billion laughs, external entities), becomes an error
result, and an item that breaks the ArticleIn limits is skipped with an error while the others
are kept. XML goes through defusedxml, which refuses entity declarations instead of expanding
them. HTML in descriptions is reduced to text with the standard library's parser. No I/O.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring, tostring
from pydantic import ValidationError

from schemas.article import ArticleIn
from schemas.identity import source_domain

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

_RSS1 = "{http://purl.org/rss/1.0/}"
_RSS090 = "{http://my.netscape.com/rdf/simple/0.9/}"
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_ATOM = "{http://www.w3.org/2005/Atom}"
_ATOM03 = "{http://purl.org/atom/ns#}"
_CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_XML = "{http://www.w3.org/XML/1998/namespace}"

_ARTICLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")
_HTTP_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)
# Tags or character references: RSS titles and descriptions may be plain text or HTML, and
# "AT&T" or "x < y" in plain text must survive as written.
_LOOKS_LIKE_HTML = re.compile(
    r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>"
    r"|&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#[xX][0-9a-fA-F]+);"
)


@dataclass(frozen=True, slots=True)
class FeedParseResult:
    """What a feed held.

    Attributes:
        items: The feed's articles, in document order, without ids unless the feed's own id
            fits the ArticleIn id pattern (otherwise the url or text decides the id).
        errors: Why the document, or which items (by 0-based index), could not be read.
        title: The feed's own title, if it has one.
    """

    items: list[ArticleIn]
    errors: list[str]
    title: str | None


@dataclass(frozen=True, slots=True)
class _Entry:
    guid: str | None
    link: str | None
    title: str
    text: str
    published_at: datetime | None
    language: str | None


def parse_feed(data: bytes) -> FeedParseResult:
    """Read an RSS 2.0, RSS 1.0 (RDF) or Atom document into articles.

    RSS items give title, link, `content:encoded` (preferred) or description, pubDate (RFC 822)
    or `dc:date`, and guid; Atom entries give title, the alternate link, content (preferred) or
    summary, published or updated (ISO 8601), and id. HTML is reduced to text with paragraph
    breaks as blank lines. A date without a zone is taken as UTC; an unreadable one is left out.

    Args:
        data: The document as received; XML declares its own encoding.

    Returns:
        The items that are valid articles, and an error for the document or for each item
        that was skipped. Never raises for any input.
    """
    try:
        root = fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        return FeedParseResult([], [f"refused: the document declares entities ({exc})"], None)
    except (ParseError, ValueError, LookupError) as exc:
        # LookupError: an encoding declaration that names no codec Python knows.
        return FeedParseResult([], [f"not well-formed XML: {exc}"], None)
    reader = _READERS.get(root.tag)
    if reader is None:
        return FeedParseResult(
            [], [f"not a feed: the root element is <{root.tag}>, not rss, rdf:RDF or feed"], None
        )
    feed = reader(root)
    errors: list[str] = []
    try:
        title = feed.title()
    except RecursionError:
        title, errors = "", ["feed title: left out, its markup is nested too deeply"]
    items: list[ArticleIn] = []
    for index, element in enumerate(feed.items):
        try:
            item = _article(feed.read(element))
        except RecursionError:
            # Serialising markup back for the HTML reduction recurses once per nesting level.
            item = "its markup is nested too deeply to read"
        if isinstance(item, str):
            errors.append(f"item {index}: skipped, {item}")
        else:
            items.append(item)
    return FeedParseResult(items, errors, title or None)


def _article(entry: _Entry) -> ArticleIn | str:
    if not entry.title and not entry.text:
        return "it has neither a title nor any text"
    try:
        return ArticleIn(
            # The link decides the id (via the canonical URL), so the same story reached
            # through two feeds, or through a feed and the API, is one article. A guid is
            # only unique within its feed ("1", "2", ...), so it stands in only without a link.
            id=(
                entry.guid
                if not entry.link and entry.guid and _ARTICLE_ID.fullmatch(entry.guid)
                else None
            ),
            url=entry.link,
            source=source_domain(entry.link) if entry.link else None,
            title=entry.title,
            body=entry.text,
            language=entry.language,
            published_at=entry.published_at,
        )
    except ValidationError as exc:
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'item'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )


@dataclass(frozen=True, slots=True)
class _Feed:
    title: Callable[[], str]
    items: list[Element]
    read: Callable[[Element], _Entry]


# --- RSS 2.0 and RSS 1.0 ---------------------------------------------------------------------


def _read_rss2(root: Element) -> _Feed:
    channel = root.find("channel")
    if channel is None:
        return _Feed(lambda: "", [], partial(_rss_item, ns="", base="", language=None))
    language = _text_of(channel.find("language")) or _text_of(channel.find(_DC + "language"))
    return _Feed(
        partial(_title, channel.find("title")),
        channel.findall("item"),
        partial(
            _rss_item, ns="", base=_text_of(channel.find("link")), language=_language(language)
        ),
    )


def _read_rdf(root: Element) -> _Feed:
    # RSS 1.0 (and 0.90) put the items beside the channel, not inside it.
    ns = _RSS090 if root.find(_RSS090 + "channel") is not None else _RSS1
    channel = root.find(ns + "channel")
    if channel is None:
        channel = root.makeelement(ns + "channel", {})
    return _Feed(
        partial(_title, channel.find(ns + "title")),
        root.findall(ns + "item"),
        partial(
            _rss_item,
            ns=ns,
            base=_text_of(channel.find(ns + "link")),
            language=_language(_text_of(channel.find(_DC + "language"))),
        ),
    )


def _rss_item(item: Element, *, ns: str, base: str, language: str | None) -> _Entry:
    guid_element = item.find(ns + "guid")
    guid = _text_of(guid_element).strip() or None
    link = _text_of(item.find(ns + "link")).strip()
    # A guid is a permalink unless it says otherwise (RSS 2.0), so it stands in for a
    # missing link.
    is_permalink = guid_element is not None and (
        guid_element.get("isPermaLink", "true").strip().lower() != "false"
    )
    if not link and guid and is_permalink:
        link = guid
    encoded = _text_of(item.find(_CONTENT + "encoded"))
    text = _html_to_text(encoded) if encoded.strip() else ""
    pub_date = _text_of(item.find(ns + "pubDate"))
    return _Entry(
        guid=guid,
        link=_absolute_url(link, base),
        title=_title(item.find(ns + "title")),
        text=text or _rich_text(item.find(ns + "description")),
        published_at=(
            _rfc822_date(pub_date)
            or _iso_date(pub_date)
            or _iso_date(_text_of(item.find(_DC + "date")))
        ),
        language=_language(_text_of(item.find(_DC + "language"))) or language,
    )


# --- Atom ------------------------------------------------------------------------------------


def _read_atom(root: Element) -> _Feed:
    ns = _ATOM if root.tag == _ATOM + "feed" else _ATOM03
    return _Feed(
        lambda: " ".join(_atom_text(root.find(ns + "title")).split()),
        root.findall(ns + "entry"),
        partial(
            _atom_entry,
            ns=ns,
            base=urljoin(_alternate_link(root, ns) or "", root.get(_XML + "base", "")),
            language=_language(root.get(_XML + "lang", "")),
        ),
    )


def _atom_entry(entry: Element, *, ns: str, base: str, language: str | None) -> _Entry:
    dates = (_text_of(entry.find(ns + name)) for name in ("published", "issued", "updated"))
    return _Entry(
        guid=_text_of(entry.find(ns + "id")).strip() or None,
        link=_absolute_url(
            _alternate_link(entry, ns) or "", urljoin(base, entry.get(_XML + "base", ""))
        ),
        title=" ".join(_atom_text(entry.find(ns + "title")).split()),
        text=_atom_text(entry.find(ns + "content")) or _atom_text(entry.find(ns + "summary")),
        published_at=next(filter(None, map(_iso_date, dates)), None),
        language=_language(entry.get(_XML + "lang", "")) or language,
    )


def _alternate_link(element: Element, ns: str) -> str | None:
    links = [link for link in element.findall(ns + "link") if link.get("href")]
    alternates = [link for link in links if link.get("rel", "alternate") == "alternate"]
    html_alternates = [link for link in alternates if "html" in link.get("type", "text/html")]
    for candidates in (html_alternates, alternates):
        if candidates:
            return candidates[0].get("href")
    return None


def _atom_text(element: Element | None) -> str:
    if element is None or element.get("src"):
        return ""  # out-of-line content lives at another address
    kind = element.get("type", "text").strip().lower()
    if kind in ("xhtml", "application/xhtml+xml"):
        return _html_to_text(_inner_markup(element))
    if kind in ("html", "text/html"):
        return _html_to_text(_text_of(element))
    if kind == "text" or kind.startswith("text/"):
        return _plain_text(_text_of(element))
    return ""  # base64 media and XML payloads are not article text


# --- Shared helpers --------------------------------------------------------------------------

_READERS: dict[str, Callable[[Element], _Feed]] = {
    "rss": _read_rss2,
    _RDF + "RDF": _read_rdf,
    _ATOM + "feed": _read_atom,
    _ATOM03 + "feed": _read_atom,
}


def _text_of(element: Element | None) -> str:
    return "" if element is None else "".join(element.itertext())


def _inner_markup(element: Element) -> str:
    # Unescaped XHTML inside a description or an Atom xhtml construct arrives as child
    # elements; serialising them back lets the HTML reduction see their paragraphs.
    return html.escape(element.text or "", quote=False) + "".join(
        tostring(child, encoding="unicode") for child in element
    )


def _rich_text(element: Element | None) -> str:
    """Text of an RSS field that may be plain text, escaped HTML or inline XHTML."""
    if element is None:
        return ""
    if len(element):
        return _html_to_text(_inner_markup(element))
    raw = element.text or ""
    return _html_to_text(raw) if _LOOKS_LIKE_HTML.search(raw) else _plain_text(raw)


def _title(element: Element | None) -> str:
    return " ".join(_rich_text(element).split())


def _plain_text(text: str) -> str:
    """Lines trimmed, paragraphs (runs of non-blank lines) separated by one blank line."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append("\n".join(current))
            current = []
    return "\n\n".join(paragraphs)


def _language(value: str) -> str | None:
    # A channel's odd language ("English", "en_US") must not cost every item its validity.
    code = value.strip().lower().replace("_", "-")
    return code if _LANGUAGE.fullmatch(code) else None


def _absolute_url(link: str, base: str) -> str | None:
    link, base = link.strip(), base.strip()
    if link and not _HTTP_URL.fullmatch(link) and _HTTP_URL.fullmatch(base):
        link = urljoin(base, link)
    # Other schemes (javascript:, mailto:) are no article address; the item keeps its text.
    return link if _HTTP_URL.fullmatch(link) else None


def _rfc822_date(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # "-0000" and a missing zone both mean "UTC, source zone unknown" (RFC 5322 section 3.3);
    # a zone name email.utils does not know lands here too.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _iso_date(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# --- HTML to text ----------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {"address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl"}
    | {"dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4"}
    | {"h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section"}
    | {"summary", "table", "tr", "ul"}
)
_CELL_TAGS = frozenset({"td", "th"})
_HIDDEN_TAGS = frozenset({"script", "style", "template", "noscript", "head", "title"})
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
_SPACES = re.compile(r" {2,}")
_TAG = re.compile(r"<(?:(/?)([A-Za-z][A-Za-z0-9:._-]*)[^<>]*>|(!--)|[!?/][^<>]*>)")


def _html_to_text(markup: str) -> str:
    parser = _TextExtractor()
    parser.feed(_normalise_markup(markup))
    parser.close()
    return parser.text()


def _normalise_markup(markup: str) -> str:
    """Tags reduced to `<name>`/`</name>`, comments and declarations dropped, stray `<` escaped.

    HTMLParser rescans the rest of the input for a tag that never closes, or an attribute
    quote that runs on, which makes hostile descriptions cost minutes of CPU (quadratic in
    their length). Every match here stops at the next `<` or `>`, so this pass is linear and
    leaves the parser nothing to rescan. Attributes are dropped as text never needs them.
    """
    out: list[str] = []
    pos = 0
    while (start := markup.find("<", pos)) != -1:
        out.append(markup[pos:start])
        match = _TAG.match(markup, start)
        if match is None:
            out.append("&lt;")
            pos = start + 1
        elif match[3]:
            end = markup.find("-->", start + 4)
            if end == -1:
                return "".join(out)  # an unclosed comment hides the rest, as in a browser
            pos = end + 3
        else:
            if match[2]:
                out.append(f"<{match[1]}{match[2].lower()}>")
            pos = match.end()
    out.append(markup[pos:])
    return "".join(out)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._structure(tag.rpartition(":")[2], opening=True)

    def handle_endtag(self, tag: str) -> None:
        self._structure(tag.rpartition(":")[2], opening=False)

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self._parts.append(_HTML_SPACE.sub(" ", data))

    def _structure(self, tag: str, *, opening: bool) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden = self._hidden + 1 if opening else max(0, self._hidden - 1)
        elif tag in _BLOCK_TAGS:
            self._parts.append("\n\n")
        elif tag == "br":
            self._parts.append("\n")
        elif tag in _CELL_TAGS:
            self._parts.append(" ")

    def text(self) -> str:
        """The text seen, one paragraph per block, blank lines between paragraphs."""
        return _plain_text(_joined_lines(self._parts))


def _joined_lines(parts: list[str]) -> str:
    return "\n".join(_SPACES.sub(" ", line) for line in "".join(parts).split("\n"))
