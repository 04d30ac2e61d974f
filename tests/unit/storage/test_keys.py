from framefarm.storage.keys import (
    assets_key,
    cancel_key,
    chunk_key,
    chunks_prefix,
    is_output_key,
    log_key,
    output_key,
    spec_key,
    video_keys,
)


def test_only_a_stitched_video_next_to_the_spec_is_an_output():
    assert is_output_key("j", output_key("j", "/tmp/final.mp4"))
    for other in (spec_key("j"), assets_key("j"), cancel_key("j"), chunk_key("j", 3, "c.mp4"),
                  log_key("j", 3, 1, "stdout"), output_key("other", "final.mp4"), output_key("j", "audio.m4a"),
                  output_key("j", "logo.png")):
        assert not is_output_key("j", other), other


def test_the_video_the_job_record_names_is_chosen_over_the_audio_track_and_other_videos():
    # GIVEN a job prefix holding its spec, assets, the audio track and two stitched videos
    listed = [spec_key("j"), assets_key("j"), output_key("j", "audio.m4a"), output_key("j", "draft.mp4"),
              output_key("j", "final.mp4"), chunk_key("j", 0, "c.mp4")]
    # THEN the videos are the two, the recorded output's first; without a record, in name order
    assert video_keys("j", listed, "/home/me/out/final.mp4") == ["jobs/j/final.mp4", "jobs/j/draft.mp4"]
    assert video_keys("j", listed) == ["jobs/j/draft.mp4", "jobs/j/final.mp4"]
    assert video_keys("j", listed[:4] + listed[5:]) == ["jobs/j/draft.mp4"]


def test_chunk_keys_live_under_the_chunks_prefix():
    assert chunk_key("j", 42, "out/c.webm") == chunks_prefix("j") + "00042.webm"
