"""Example workflows shipped with the package: ``cronflow-actors serve`` with no APP serves
``order_processing.workflows``, so an installed wheel has something to show at once."""
