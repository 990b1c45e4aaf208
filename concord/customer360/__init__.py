"""Customer 360: the figures finance and sales look at, one row per golden customer.

``metrics`` sums orders, revenue, balances, shipments and payments in SQL in the base currency;
``segments`` scores RFM quintiles, Pareto value tiers and lifecycle stages; ``churn`` fits
BG/NBD for churn risk; ``lookup`` finds a golden customer by id, record key or name. The stage
that computes and writes the rows is ``concord.pipeline.build_360``.
"""
