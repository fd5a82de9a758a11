"""Kept for imports from before the SMS caps: the counting moved to ``daemon.core.sms_segments``, where the
engine reads it for the daily budget (the core may not import the channels)."""

from daemon.core.sms_segments import sms_segments as sms_segments
