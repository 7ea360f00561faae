"""Analytics on bars: resampling and normalisation (:mod:`~lean_data.analytics.transform`),
technical indicators (:mod:`~lean_data.analytics.indicators`) and the :class:`Bars` sequence
with its pandas and polars frames (:mod:`~lean_data.analytics.frames`, which imports them
only when asked). Pure; core imports only.
"""
