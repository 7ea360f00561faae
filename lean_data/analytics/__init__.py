"""Analytics on bars: transforms to and from pandas (:mod:`~lean_data.analytics.transform`)
and technical indicators (:mod:`~lean_data.analytics.indicators`). Pure; core imports only.
"""
