"""The token format: prefixed, checksummed, random; a typo is refused without any lookup."""

from __future__ import annotations

from shipyard.auth import tokens


def test_tokens_have_the_prefix_length_and_a_valid_checksum() -> None:
    token = tokens.new_token()
    assert token.startswith("shp_") and len(token) == 53
    assert tokens.well_formed(token)
    assert tokens.display_prefix(token) == token[:12]


def test_tokens_are_distinct() -> None:
    assert len({tokens.new_token() for _ in range(200)}) == 200


def test_one_changed_character_breaks_the_checksum() -> None:
    token = tokens.new_token()
    for i in range(4, len(token)):
        changed = token[:i] + ("a" if token[i] != "a" else "b") + token[i + 1:]
        assert not tokens.well_formed(changed), i


def test_other_shapes_are_refused() -> None:
    token = tokens.new_token()
    for bad in ("", "shp_", token[:-1], token + "x", "ghp_" + token[4:], token.replace("shp_", "SHP_"),
                token[:20] + "-" + token[21:]):
        assert not tokens.well_formed(bad), bad


def test_only_the_hash_is_kept_and_it_is_stable() -> None:
    token = tokens.new_token()
    assert tokens.token_hash(token) == tokens.token_hash(token)
    assert len(tokens.token_hash(token)) == 64 and token not in tokens.token_hash(token)
