"""The tweet normaliser: what a pre-trained text encoder's vocabulary can read in a tweet.

MiniLM and friends were trained on prose; in a tweet the URL is noise, the @mention a name the
model cannot know, "#sohappy" one unknown token, an emoji an [UNK] and "&amp;" an artefact of
scraping. `normalize_tweet` turns each into what the model can read, and keeps the sentiment
cues (emoji become their names, hashtags their words). A `TrainConfig` field, so `predict`
applies the same normalisation as training.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from jftzoo.datasets.groups import URL_PATTERN

NORMALIZERS = ("none", "tweet")

_MENTION = re.compile(r"(?<!\w)@\w+")
_HASHTAG = re.compile(r"(?<!\w)#(\w+)")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_SPACES = re.compile(r"\s+")


def normalize_tweet(text: str) -> str:
    """HTML entities unescaped, URLs -> "http", @mentions -> "@user" (the TweetEval/BERTweet convention),
    "#SoHappy" -> "So Happy", emoji -> their CLDR names (":smiling_face:" -> "smiling face"), spaces collapsed."""
    import emoji

    text = html.unescape(text)
    text = URL_PATTERN.sub(" http ", text)
    text = _MENTION.sub("@user", text)
    text = _HASHTAG.sub(lambda m: " " + _CAMEL.sub(" ", m.group(1)).replace("_", " ") + " ", text)
    text = emoji.demojize(text, delimiters=(" ", " "))
    text = re.sub(r"(?<= )[a-z_]+(?= )", lambda m: m.group(0).replace("_", " "), text)  # face_with_tears -> words
    return _SPACES.sub(" ", text).strip()


def normalizer(name: str | None) -> Callable[[str], str] | None:
    """The normaliser named `name` ("none" or None: keep texts as they are)."""
    if name in (None, "none"):
        return None
    if name == "tweet":
        return normalize_tweet
    from jftzoo.errors import UsageError, suggest

    hint = suggest(name, NORMALIZERS)
    did = f" Did you mean {hint[0]!r}?" if hint else ""
    raise UsageError(f"text_normalizer must be one of {', '.join(NORMALIZERS)}, got {name!r}.{did}")
