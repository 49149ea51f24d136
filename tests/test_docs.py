"""The README and the pages under docs/: every relative link and image resolves to a file
(and every #anchor to a heading of its page), and the README stays a short front door."""
import glob
import os
import re
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = sorted(['README.md', os.path.join('Figures', 'README.md')]
               + [os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, 'docs', '*.md'))])
README_MAX_BYTES = 16 * 1024

MD_LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')  # [text](target), ![alt](target)
HTML_LINK = re.compile(r'<(?:img|a)\b[^>]*?\b(?:src|href)="([^"]+)"', re.I)


def read(page):
    with open(os.path.join(REPO, page), encoding='utf-8') as f:
        return f.read()


def prose(text):
    """The text without code: fenced blocks, indented blocks and `inline code` can hold
    brackets and parentheses that are not links (--n_task=[2,24] (...))."""
    text = re.sub(r'^```.*?^```', '', text, flags=re.S | re.M)
    text = re.sub(r'(?m)^(?: {4}|\t).*$', '', text)
    return re.sub(r'`[^`\n]*`', '', text)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    heading = re.sub(r'[`*]', '', heading.strip().lower())
    return re.sub(r'[^\w\- ]', '', heading).replace(' ', '-')


def anchors(page):
    """The anchors of a page's headings, with GitHub's -1, -2 suffixes for repeats."""
    seen, found = {}, set()
    for line in re.sub(r'^```.*?^```', '', read(page), flags=re.S | re.M).splitlines():
        m = re.match(r'#{1,6}\s+(.*?)\s*#*\s*$', line)
        if m:
            s = slug(m.group(1))
            found.add(s if s not in seen else f'{s}-{seen[s]}')
            seen[s] = seen.get(s, 0) + 1
    return found


def links(page):
    text = prose(read(page))
    return MD_LINK.findall(text) + HTML_LINK.findall(text)


def broken_links(page):
    """The page's relative links whose file or heading does not exist."""
    broken = []
    for target in links(page):
        if re.match(r'[a-z][a-z0-9+.-]*:', target, re.I):  # https:, mailto: - not checked here
            continue
        path, _, anchor = target.partition('#')
        file = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        if not os.path.exists(os.path.join(REPO, file)):
            broken.append(f'{target} (no file {file})')
        elif anchor and file.endswith('.md') and anchor not in anchors(file):
            broken.append(f'{target} (no heading #{anchor} in {file})')
    return broken


@pytest.mark.parametrize('page', PAGES)
def test_links_resolve(page):
    assert links(page) or page != 'README.md', 'no links found in README.md: the parser is broken'
    assert broken_links(page) == [], f'{page}: broken links'


def test_readme_is_a_front_door():
    size = os.path.getsize(os.path.join(REPO, 'README.md'))
    assert size <= README_MAX_BYTES, f'README.md is {size} bytes; move detail to docs/ (limit {README_MAX_BYTES})'


def test_readme_links_every_docs_page():
    """A page under docs/ that the README does not link cannot be found from the front door."""
    linked = {os.path.normpath(t.partition('#')[0]) for t in links('README.md')}
    pages = {p for p in PAGES if p.startswith('docs' + os.sep)}
    assert pages <= linked, f'docs pages the README does not link: {sorted(pages - linked)}'


def test_checker_catches_broken_links(tmp_path, monkeypatch):
    """The checker itself: a missing file, a missing heading and a link hidden in code."""
    monkeypatch.setattr(sys.modules[__name__], 'REPO', str(tmp_path))
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'docs' / 'a.md').write_text('# Page A\n\n## The `loss` (BCE)\n\n## The `loss` (BCE)\n')
    (tmp_path / 'README.md').write_text(
        '[ok](docs/a.md#the-loss-bce) [ok2](docs/a.md#the-loss-bce-1) [web](https://x.org/y)\n'
        '<img src="docs/missing.png" width="10"> [bad](docs/a.md#nope) [self](#nowhere)\n'
        '`[not](a link)`\n\n```\n[also not](a link)\n```\n')
    assert broken_links('README.md') == [
        'docs/a.md#nope (no heading #nope in docs/a.md)',
        '#nowhere (no heading #nowhere in README.md)',
        'docs/missing.png (no file docs/missing.png)']
