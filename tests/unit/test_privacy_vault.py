"""The key store of personal data (infra/privacy/vault.py): tokens open with their
subject's key only, read "[erased]" once it is deleted (in every process within the cache
bound), and open inside JSON without breaking it."""

from __future__ import annotations

import json

import pytest

from infra.privacy.vault import KEY_CACHE_SECONDS, Vault
from infra.sql.database import connect


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def vaults(tmp_path, clock) -> tuple[Vault, Vault]:
    """Two processes' vaults on one store."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    first, second = Vault(connect(url), clock), Vault(connect(url), clock)
    first.setup()
    second.setup()
    return first, second


def test_a_token_opens_with_its_subject_s_key_and_holds_no_clear_text(vaults):
    vault, _ = vaults
    dana, fox = vault.pseudonym("caller", "Dana Scully"), vault.pseudonym("caller", "Fox")
    vault.enrol("incident-1", dana)
    vault.enrol("incident-2", fox)
    token = vault.seal(dana, "Dana's laptop")
    assert "Dana" not in token and token.startswith(f"pii:1:{dana}:")
    assert vault.open(token) == "Dana's laptop"
    assert vault.seal(dana, "Dana's laptop") != token  # a fresh nonce each time
    forged = token.replace(dana, fox)  # moved under another subject: does not open
    assert vault.open(forged) == "[erased]"


def test_a_person_is_one_subject_however_their_name_is_spaced_or_cased(vaults):
    vault, other = vaults
    assert vault.pseudonym("caller", "Dana  Scully") == vault.pseudonym("caller", " dana scully")
    assert vault.pseudonym("caller", "Dana Scully") == other.pseudonym("caller", "Dana Scully")
    assert vault.pseudonym("caller", "Dana Scully") != vault.pseudonym("caller", "Dana Sculy")


def test_an_erased_subject_reads_erased_everywhere_within_the_cache_bound(vaults, clock):
    here, elsewhere = vaults
    dana = here.pseudonym("caller", "Dana Scully")
    here.enrol("incident-1", dana)
    token = here.seal(dana, "reimaged the disk")
    assert elsewhere.open(token) == "reimaged the disk"  # cached there now
    assert here.erase(dana, "dpo", "asked by letter", "consent_withdrawn") is True
    assert here.open(token) == "[erased]"
    clock.now += KEY_CACHE_SECONDS
    assert elsewhere.open(token) == "[erased]"
    assert here.erase(dana, "dpo", "again", "consent_withdrawn") is False
    assert here.seal(dana, "new text") == "[erased]"
    status = here.status(dana)
    assert status and status["has_key"] in (False, 0) and status["aggregates"] == ["incident-1"]


def test_tokens_open_inside_json_as_valid_json(vaults):
    vault, _ = vaults
    dana = vault.pseudonym("caller", "Dana")
    vault.enrol("incident-1", dana)
    tricky = 'She said "it\'s broken"\nC:\\Users\\dana — ☕'
    body = json.dumps({"title": vault.seal(dana, tricky), "n": [vault.seal(dana, "x")]}).encode()
    assert json.loads(vault.reveal_json(body)) == {"title": tricky, "n": ["x"]}
    assert vault.reveal({"a": [vault.seal(dana, tricky)]}) == {"a": [tricky]}


def test_a_person_erased_by_another_process_is_recorded_afresh_within_the_cache_bound(
    vaults, clock
):
    here, elsewhere = vaults
    before = here.person("Walter Skinner")  # this process remembers the token
    subject = before.removeprefix("pid:1:")
    assert elsewhere.erase(subject, "dpo", "asked by letter", "consent_withdrawn") is True
    clock.now += KEY_CACHE_SECONDS
    after = here.person("Walter Skinner")
    assert after != before  # not written under the erased subject, unreadable from birth
    assert here.open(after) == "Walter Skinner" and here.open(before) == "[erased]"


def test_an_answer_naming_many_people_reads_their_keys_in_one_query(vaults, clock, monkeypatch):
    writer, reader = vaults
    names = [f"agent {n}" for n in range(300)]
    body = json.dumps({"rows": [{"agent": writer.person(name)} for name in names]}).encode()
    opened = []
    transaction = reader.db.transaction
    monkeypatch.setattr(
        reader.db, "transaction", lambda **kw: opened.append(1) or transaction(**kw)
    )
    rows = json.loads(reader.reveal_json(body))["rows"]
    assert [row["agent"] for row in rows] == names
    assert len(opened) == 2  # their keys, their sealed names: once each, not per person
    clock.now += KEY_CACHE_SECONDS
    opened.clear()
    assert json.loads(reader.reveal_json(body))["rows"] == rows
    assert len(opened) == 1  # the keys again (an erasure shows within the bound); names kept
