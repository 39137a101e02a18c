"""Kafka/Faust side of seqstream: the worker, settings, codecs, metrics, simulator and CLI."""

__all__: list[str] = []
