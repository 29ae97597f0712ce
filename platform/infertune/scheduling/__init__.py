"""Scheduled re-tuning: schedules, the scheduler service and its lock, the re-tune job."""
