"""The old home of the bundled examples, kept so ``examples.order_processing`` still imports.
They ship inside the package now (``cronflow_actors.examples``), so an installed wheel has them."""
