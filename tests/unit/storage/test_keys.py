from framefarm.storage.keys import (
    assets_key,
    cancel_key,
    chunk_key,
    chunks_prefix,
    is_output_key,
    log_key,
    output_key,
    spec_key,
)


def test_only_a_stitched_video_next_to_the_spec_is_an_output():
    assert is_output_key("j", output_key("j", "/tmp/final.mp4"))
    for other in (spec_key("j"), assets_key("j"), cancel_key("j"), chunk_key("j", 3, "c.mp4"),
                  log_key("j", 3, 1, "stdout"), output_key("other", "final.mp4")):
        assert not is_output_key("j", other), other


def test_chunk_keys_live_under_the_chunks_prefix():
    assert chunk_key("j", 42, "out/c.webm") == chunks_prefix("j") + "00042.webm"
