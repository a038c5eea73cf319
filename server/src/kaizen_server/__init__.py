"""The Kaizen CT server: ingests LLM traces and scores, stores them, serves an API and a dashboard."""

__version__ = "0.1.0"
