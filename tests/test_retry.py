from simulator.core import retry


def test_aws_delays_one_then_two_minutes() -> None:
    first = retry.after_failure(1, 2, accepted_s=0, now_s=1, max_event_age_s=21600)
    second = retry.after_failure(2, 2, accepted_s=0, now_s=62, max_event_age_s=21600)
    assert first == retry.RetryAt(61.0, 60.0)
    assert second == retry.RetryAt(182.0, 120.0)


def test_retries_exhausted_after_last_attempt() -> None:
    assert retry.after_failure(3, 2, 0, 200, 21600) == retry.GiveUp("RetriesExhausted")
    assert retry.after_failure(1, 0, 0, 1, 21600) == retry.GiveUp("RetriesExhausted")


def test_gives_up_at_once_when_next_retry_would_pass_the_event_age() -> None:
    assert retry.after_failure(1, 2, 0, 1, 60) == retry.GiveUp("EventAgeExceeded")


def test_time_scale_compresses_delays_and_age_alike() -> None:
    assert retry.after_failure(1, 2, 0, 0, 21600, time_scale=0.01) == retry.RetryAt(0.6, 0.6)
    assert retry.after_failure(1, 2, 0, 0.01, 60, time_scale=0.01) == retry.GiveUp(
        "EventAgeExceeded"
    )


def test_throttle_backoff_starts_at_one_second_doubles_and_stops_at_five_minutes() -> None:
    delays = [retry.throttle_delay_s(n) for n in range(11)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0]
    assert retry.throttle_delay_s(3, time_scale=0.01) == 0.08
