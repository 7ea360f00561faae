"""Series logic: what one (feed, symbol, resolution) stream of items is, in time.

It owns continuity (order, duplicates, revisions, gaps: :mod:`~lean_data.series.continuity`),
trading calendars (:mod:`~lean_data.series.calendars`; session arithmetic in
:mod:`~lean_data.series.sessions`, library-computed ones in :mod:`~lean_data.series.exchanges`),
tick-to-bar aggregation (:mod:`~lean_data.series.aggregation`), resampling bars into coarser ones
(:mod:`~lean_data.series.resample`, its buckets in :mod:`~lean_data.series.buckets`),
interval arithmetic (:mod:`~lean_data.series.intervals`) and the per-series ring buffer
(:mod:`~lean_data.series.buffer`). Pure and synchronous: no I/O, no asyncio; it imports only
the core modules (models, errors, symbols) and analytics.
"""
