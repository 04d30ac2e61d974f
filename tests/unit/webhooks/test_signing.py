"""verify(): what a receiver relies on. Genuine and fresh passes; stale, future, changed, forged,
malformed and missing are each refused with a one-line SignatureError."""

from __future__ import annotations

import pytest

from framefarm.webhooks import SignatureError, sign, verify
from tests.webhook_receiver import genuine

SECRET = "whsec-0123456789abcdef"
BODY = b'{"event":"job.completed","job_id":"job-1"}'
NOW = 1_800_000_000


def test_a_fresh_genuine_delivery_passes_and_matches_an_independent_implementation():
    # GIVEN a body signed now
    header = sign(BODY, SECRET, timestamp=NOW)
    # WHEN a receiver checks it a minute later, with verify and with its own code
    # THEN both accept it, and verify returns the signed time
    assert verify(BODY, header, SECRET, now=NOW + 60) == NOW
    assert genuine(BODY, header, SECRET, now=NOW + 60)


@pytest.mark.parametrize("skew, words", [(301, "301 s old"), (-301, "301 s in the future")])
def test_a_signature_outside_the_tolerance_is_refused(skew, words):
    # GIVEN a genuine delivery checked 301 s after (or before) it was signed
    header = sign(BODY, SECRET, timestamp=NOW)
    # WHEN it is verified with the default 300 s tolerance
    with pytest.raises(SignatureError) as caught:
        verify(BODY, header, SECRET, now=NOW + skew)
    # THEN it is refused, saying how far off it is
    assert words in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("body, secret", [(BODY.replace(b"completed", b"failed"), SECRET),
                                          (BODY + b" ", SECRET), (BODY, SECRET + "x")])
def test_a_changed_body_or_another_secret_is_refused(body, secret):
    # GIVEN a signature over BODY with SECRET
    header = sign(BODY, SECRET, timestamp=NOW)
    # WHEN the body changed in transit, or the receiver holds another secret
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(body, header, secret, now=NOW)


def test_a_rotated_secret_still_verifies_when_one_of_two_signatures_matches():
    # GIVEN a header carrying signatures under an old and a new secret
    header = sign(BODY, "old-secret-0123456789", timestamp=NOW) + ",v1=" + sign(BODY, SECRET, timestamp=NOW)[-64:]
    # THEN a receiver holding either accepts it
    assert verify(BODY, header, SECRET, now=NOW) == NOW
    assert verify(BODY, header, "old-secret-0123456789", now=NOW) == NOW


@pytest.mark.parametrize("header", [None, "", "v1=abc", "t=abc,v1=00", f"t={NOW}", f"t={NOW},t={NOW},v1=00"])
def test_a_missing_or_malformed_header_is_refused(header):
    with pytest.raises(SignatureError):
        verify(BODY, header, SECRET, now=NOW)
