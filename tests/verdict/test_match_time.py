"""The board's time of the deciding line (issue 16): the log's time index (hwut.logtime)
as the scheduler writes it and the stream reads it, and the matcher's reasons."""
from __future__ import annotations

from hwut.logtime import MAX_BYTES, RECORD, IndexReader, LogTimes
from hwut.verdict import Criteria, Matcher, Pattern, Tap


def test_the_index_gives_each_line_its_time_and_the_reader_follows_it(tmp_path):
    path = tmp_path / "times"
    times = LogTimes(path)
    times.chunk(12, 0.5, [[6, 0.1], [12, 0.5]])           # "line1\nline2\n"
    assert (times.time_at(6), times.time_at(3), times.time_at(12)) == (0.1, 0.1, 0.5)
    times.tick(0.9)                                        # no output: the board moved on
    times.chunk(4, 1.2, [])                                # "par" + half a line
    assert times.time_at(16) == 1.2 and times.now == 1.2
    reader = IndexReader(path)
    assert reader.refresh(keep_from=0)
    assert reader.now == 1.2 and reader.covered == 16
    end, marks = reader.marks(0, 16, limit=10)
    assert end == 16 and marks == [(6, 0.1), (12, 0.5), (16, 1.2)]  # the tick is no mark
    assert reader.marks(0, 16, limit=1) == (6, [(6, 0.1)])          # cut at the limit
    reader.refresh(keep_from=12)
    assert reader.time_at(13) == 1.2 and reader.time_at(17) is None
    times.restart()                                        # a retried run starts over
    assert reader.refresh(keep_from=0) and reader.covered == 0
    times.close()


def test_untimed_output_keeps_the_offsets_and_claims_no_time(tmp_path):
    times = LogTimes(tmp_path / "times")
    times.chunk(5, None, [])
    assert times.time_at(5) is None and times.offset == 5
    times.chunk(3, 2.0, [[3, 2.0]])
    assert times.time_at(8) == 2.0
    times.close()


def test_the_index_is_bounded(tmp_path):
    times = LogTimes(tmp_path / "times")
    for k in range(MAX_BYTES // RECORD.size + 100):
        times.tick(float(k + 1))
    assert (tmp_path / "times").stat().st_size <= MAX_BYTES
    assert times.now == MAX_BYTES // RECORD.size + 100  # still known in memory
    times.close()


def test_the_reason_gives_the_time_the_deciding_line_arrived(tmp_path):
    times = LogTimes(tmp_path / "times")
    stopped: list[bool] = []
    tap = Tap(Criteria(fail=(Pattern("PANIC"),)), lambda data: None,
              lambda: stopped.append(True), time_at=times.time_at)
    chunk = b"boot\r\nPANIC here\r\nmore\r\n"
    times.chunk(len(chunk), 9.0, [[6, 0.25], [19, 0.75], [25, 9.0]])
    tap(chunk)
    assert stopped
    reason = tap.verdict("FINISHED", "verdict", None, 9.0, None)["verdict_reason"]
    assert reason == "fail pattern 'PANIC' at line 2 (0.750000 s virtual): 'PANIC here'"
    times.close()


def test_without_times_the_reason_claims_none():
    matcher = Matcher(Criteria(expect=(Pattern("ok"),)), time_at=lambda offset: None)
    decision = matcher.feed(b"all ok\n")
    assert decision is not None and "s virtual" not in decision.reason
    assert decision.at_s is None


def test_the_job_process_stamps_line_ends_as_the_backend_writes_them():
    from hwut.backends.base import BoardClock, CancelToken
    from hwut.runner import child, wire

    sent: list[wire.Frame] = []

    class Channel:
        def send(self, frame: wire.Frame) -> None:
            sent.append(frame)

    clock = BoardClock()
    stream = child.OutputStream(Channel(), wire.Kind.UART, 1 << 20, CancelToken(), "UART log",
                                clock)  # type: ignore[arg-type]
    stream.write(b"early, before the backend knows the time\n")
    stream.flush()
    clock.set(0.5)
    stream.write(b"a\nb")
    clock.set(0.7)
    stream.write(b"c\n")
    stream.flush()
    assert sent[0].fields == {}  # untimed: no claim
    assert sent[1].fields == {"t": 0.7, "marks": [[2, 0.5], [5, 0.7]]}
    for _ in range(child.MAX_MARKS + 1):  # many short lines: sent early, none lost
        stream.write(b"x\n")
    stream.flush()
    frames = sent[2:]
    assert len(frames) == 2 and len(frames[0].fields["marks"]) == child.MAX_MARKS
    assert sum(len(f.fields["marks"]) for f in frames) == child.MAX_MARKS + 1


def test_records_replayed_elsewhere_make_the_same_index(tmp_path):
    """A worker host's index (its records, as its reports carry them) replayed by the
    server gives the server's file the same records and the same answers."""
    sent = bytearray()
    host = LogTimes(tmp_path / "host", on_records=sent.extend)
    server = LogTimes(tmp_path / "server")
    host.chunk(12, 0.5, [[6, 0.1], [12, 0.5]])
    server.replay(bytes(sent), 12)
    assert (server.time_at(6), server.time_at(12)) == (0.1, 0.5)
    sent.clear()
    host.tick(0.9)
    host.chunk(4, 1.2, [])
    server.replay(bytes(sent[:16]), 0)       # a report cut between two records
    server.replay(bytes(sent[16:]), 4)
    assert server.time_at(16) == 1.2 and server.now == 1.2
    for t in (host, server):
        t.close()
    assert (tmp_path / "host").read_bytes() == (tmp_path / "server").read_bytes()


def test_replayed_records_never_go_back_and_untimed_bytes_claim_no_time(tmp_path):
    server = LogTimes(tmp_path / "times")
    server.replay(b"", 5)                                   # a backend with no board time
    assert server.time_at(5) is None and server.offset == 5
    good, back_in_time = RECORD.pack(9, 2.0), RECORD.pack(12, 1.0)
    back_in_offset, not_a_time = RECORD.pack(3, 3.0), RECORD.pack(14, float("nan"))
    server.replay(good + back_in_time + back_in_offset + not_a_time + b"\x01", 4)
    assert server.time_at(9) == 2.0 and server.now == 2.0
    server.close()
    assert (tmp_path / "times").read_bytes() == good
