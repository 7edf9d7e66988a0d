"""``cronflow_actors.examples.order_processing`` under its old name (see ``__init__``).

python -m examples.order_processing     # the same as python -m cronflow_actors.examples...
"""

from cronflow_actors.examples.order_processing import OrderIn, demo, main, orders, workflows

__all__ = ["OrderIn", "demo", "main", "orders", "workflows"]

if __name__ == "__main__":
    main()
