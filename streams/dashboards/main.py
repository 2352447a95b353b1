"""Registers the dashboards' topics, tables and agents on the shared Faust app (`streams.app`)."""

from __future__ import annotations

from streams.app import app, kafka_settings
from streams.dashboards.agents import register
from streams.dashboards.settings import DashboardSettings

dashboards = register(app, kafka_settings, DashboardSettings())
