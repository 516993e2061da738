"""mlx5 tables shared by the ``rdma`` and ``netdev`` plugins; not a plugin itself.

``ifc.py`` holds the command-interface constants (``include/linux/mlx5/mlx5_ifc.h``,
``include/linux/mlx5/driver.h``), ``fwctl.py`` the rules of
``drivers/fwctl/mlx5/main.c``.  Both plugins build their mlx5 fwctl policy from
``fwctl.rules()``, so one scope table answers for the HCA and for the NIC.
"""
