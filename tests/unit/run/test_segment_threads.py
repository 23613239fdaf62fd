"""The torch threads a run's numbers came from, segment by segment (issue 59: on the AMD EPYCs a matmul's
last bits depend on the thread count): summary.json's segment_threads, and one warning line when a
resume trains on other threads than its last segment (run/start.py)."""

from __future__ import annotations

from align_lab.run.start import sampling_threads, segment_threads, threads_changed


def test_each_segment_records_its_threads_after_the_earlier_ones(two_threads):
    assert segment_threads({}, 0) == [2]  # a new run: this segment's 2 threads
    assert segment_threads({"threads": 1, "segment_threads": [1]}, 1) == [1, 2]
    # a summary written before segment_threads existed: its `threads` for each of the 2 earlier segments
    assert segment_threads({"threads": 1}, 2) == [1, 1, 2]
    # a segment killed without a word left its own entry (written as it started): kept, as counted
    assert segment_threads({"threads": 4, "segment_threads": [1, 4]}, 2) == [1, 4, 2]


def test_a_resume_on_other_threads_is_one_warning_line_naming_both(two_threads):
    line = threads_changed({"threads": 1}, 40)
    assert line.startswith(
        "torch threads: this run trained on 1 until its checkpoint at step 40 and goes on with 2"
    )
    assert "\n" not in line and "docs/reproducibility.md" in line
    assert threads_changed({"threads": 2}, 40) is None  # the same threads: nothing to say
    assert threads_changed({}, 40) is None  # no record of the earlier threads


def test_auto_rollout_threads_are_the_first_segments_and_a_resume_keeps_them(two_threads):
    """rollout.threads=auto (issue 72): a new run samples on the threads it was given (2 here), a resume
    on the count its summary recorded, whatever this segment was given; a summary written before the
    count was recorded: its `threads`, what its rollouts sampled on."""
    assert sampling_threads({}, resumed=False) == 2
    assert sampling_threads({"sampling_threads": 1, "threads": 1}, resumed=False) == 2  # started afresh
    assert sampling_threads({"sampling_threads": 1, "threads": 2}, resumed=True) == 1
    assert sampling_threads({"threads": 1}, resumed=True) == 1
    assert sampling_threads({"sampling_threads": "x", "threads": None}, resumed=True) == 2  # none readable
