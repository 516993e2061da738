"""mlx5 command-interface constants, as in linux ``include/linux/mlx5/mlx5_ifc.h``.

Opcodes are ``MLX5_CMD_OP_*``; the few that ``mlx5_ifc.h`` lacks are from
the local enum of ``drivers/fwctl/mlx5/main.c``.  General object types are
``MLX5_OBJ_TYPE_*`` / ``MLX5_GENERAL_OBJECT_TYPES_*``; their ids are unique
only within a type, which is what the 2019 DEVX fix is about.
"""

from __future__ import annotations

import errno

# ----------------------------------------------------------------------------- opcodes

OPCODES: dict[str, int] = {
    # HCA and global state
    "QUERY_HCA_CAP": 0x100,
    "QUERY_ADAPTER": 0x101,
    "ENABLE_HCA": 0x104,
    "SET_HCA_CAP": 0x109,
    "QUERY_OTHER_HCA_CAP": 0x10E,  # fwctl/mlx5/main.c local enum
    "QUERY_ESW_FUNCTIONS": 0x740,
    "QUERY_VPORT_STATE": 0x750,
    "MODIFY_VPORT_STATE": 0x751,
    "QUERY_ESW_VPORT_CONTEXT": 0x752,
    "MODIFY_ESW_VPORT_CONTEXT": 0x753,
    "QUERY_NIC_VPORT_CONTEXT": 0x754,
    "MODIFY_NIC_VPORT_CONTEXT": 0x755,
    "QUERY_HCA_VPORT_CONTEXT": 0x762,
    "MODIFY_HCA_VPORT_CONTEXT": 0x763,
    "ACCESS_REG": 0x805,
    "NOP": 0x80D,
    "SET_DIAGNOSTIC_PARAMS": 0x820,  # fwctl/mlx5/main.c local enum
    "QUERY_DIAGNOSTIC_PARAMS": 0x819,  # fwctl/mlx5/main.c local enum
    "QUERY_LAG": 0x842,
    "MODIFY_CONG_STATUS": 0x823,  # 7.3.4 mlx5_ifc.h
    "DELEGATE_VHCA_MANAGEMENT": 0x731,  # fwctl/mlx5/main.c local enum (7.3.4: not in mlx5_ifc.h)
    # objects
    "CREATE_MKEY": 0x200,
    "QUERY_MKEY": 0x201,
    "DESTROY_MKEY": 0x202,
    "CREATE_EQ": 0x301,
    "DESTROY_EQ": 0x302,
    "QUERY_EQ": 0x303,
    "CREATE_CQ": 0x400,
    "DESTROY_CQ": 0x401,
    "QUERY_CQ": 0x402,
    "MODIFY_CQ": 0x403,
    "CREATE_QP": 0x500,
    "DESTROY_QP": 0x501,
    "RST2INIT_QP": 0x502,
    "INIT2RTR_QP": 0x503,
    "RTR2RTS_QP": 0x504,
    "2ERR_QP": 0x507,
    "2RST_QP": 0x50A,
    "QUERY_QP": 0x50B,
    "CREATE_SRQ": 0x700,
    "DESTROY_SRQ": 0x701,
    "QUERY_SRQ": 0x702,
    "ALLOC_PD": 0x800,
    "DEALLOC_PD": 0x801,
    "CREATE_TIR": 0x900,
    "MODIFY_TIR": 0x901,
    "DESTROY_TIR": 0x902,
    "QUERY_TIR": 0x903,
    "CREATE_SQ": 0x904,
    "MODIFY_SQ": 0x905,
    "DESTROY_SQ": 0x906,
    "QUERY_SQ": 0x907,
    "CREATE_RQ": 0x908,
    "MODIFY_RQ": 0x909,
    "DESTROY_RQ": 0x90A,
    "QUERY_RQ": 0x90B,
    "CREATE_TIS": 0x912,
    "MODIFY_TIS": 0x913,
    "DESTROY_TIS": 0x914,
    "QUERY_TIS": 0x915,
    "CREATE_RQT": 0x916,
    "MODIFY_RQT": 0x917,
    "DESTROY_RQT": 0x918,
    "QUERY_RQT": 0x919,
    "CREATE_FLOW_TABLE": 0x930,
    "DESTROY_FLOW_TABLE": 0x931,
    "QUERY_FLOW_TABLE": 0x932,
    "CREATE_FLOW_GROUP": 0x933,
    "DESTROY_FLOW_GROUP": 0x934,
    "QUERY_FLOW_GROUP": 0x935,
    "SET_FLOW_TABLE_ENTRY": 0x936,  # op_mod 0: create; DEVX treats op_mod 1 as modify
    "QUERY_FLOW_TABLE_ENTRY": 0x937,
    "DELETE_FLOW_TABLE_ENTRY": 0x938,
    "MODIFY_FLOW_TABLE": 0x93C,
    "CREATE_GENERAL_OBJECT": 0xA00,
    "MODIFY_GENERAL_OBJECT": 0xA01,
    "QUERY_GENERAL_OBJECT": 0xA02,
    "DESTROY_GENERAL_OBJECT": 0xA03,
    "CREATE_UCTX": 0xA04,
    "QUERY_UCTX": 0xA05,  # fwctl/mlx5/main.c local enum
    "DESTROY_UCTX": 0xA06,
    "CREATE_UMEM": 0xA08,
    "DESTROY_UMEM": 0xA0A,
    # MLX5_CMD_OP_GENERAL_START..END: "general commands that don't work over an object"
    "SYNC_STEERING": 0xB00,
    "ACCESS_REGISTER_USER": 0xB0C,
    "QUERY_VUID": 0xB22,
    "POSTPONE_CONNECTED_QP_TIMEOUT": 0xB2E,
}
GENERAL_START, GENERAL_END = 0xB00, 0xD00

# ----------------------------------------------------------------------------- objects

#: General object types (ids unique per type), simplest first for the shrinker.
#: Four of the many: two the kernel creates (IPsec offload) and two it does not.
GENERAL_TYPES: dict[str, int] = {
    "SW_ICM": 0x8,
    "ENCRYPTION_KEY": 0xC,
    "IPSEC": 0x13,
    "FLOW_METER_ASO": 0x24,
}

#: MLX5_SHARED_RESOURCE_UID: objects any uid may reference (completion EQs since 2019).
SHARED_UID = 0xFFFF

# uctx capability bits (mlx5_ifc.h; TOOLS_RESOURCES from fwctl/mlx5/main.c)
UCTX_CAP_RAW_TX = 1 << 0
UCTX_CAP_INTERNAL_DEV_RES = 1 << 1
UCTX_CAP_TOOLS_RESOURCES = 1 << 2

# ----------------------------------------------------------------------------- registers

PMTU = "PMTU"  # 0x5003, port MTU
PAOS = "PAOS"  # 0x5006, port administrative and operational status
#: the registers the rdma model's ACCESS_REG reaches
REGISTERS = {PMTU: 0x5003, PAOS: 0x5006}
#: MLX5_REG_* (include/linux/mlx5/driver.h) the netdev stack programs: MTU, speed/type,
#: admin status, pause/PFC, and the port counters ethtool -S reads
PORT_REGISTERS = {PMTU: 0x5003, "PTYS": 0x5004, PAOS: 0x5006, "PFCC": 0x5007, "PPCNT": 0x5008}

# ----------------------------------------------------------------------------- status

STAT_OK = 0x0
BAD_OP = 0x2
BAD_PARAM = 0x3
BAD_RES = 0x5
RES_BUSY = 0x6
LIM_ERR = 0x8  # MLX5_CMD_STAT_LIM_ERR: a firmware resource limit was reached
BAD_RES_STATE = 0x9
BAD_QP_STATE = 0x10
STATUS_NAMES = {
    STAT_OK: "OK",
    BAD_OP: "BAD_OP_ERR",
    BAD_PARAM: "BAD_PARAM_ERR",
    BAD_RES: "BAD_RES_ERR",
    RES_BUSY: "RES_BUSY",
    LIM_ERR: "LIM_ERR",
    BAD_RES_STATE: "BAD_RES_STATE_ERR",
    BAD_QP_STATE: "BAD_QP_STATE_ERR",
}
#: cmd_status_to_err() in drivers/net/ethernet/mellanox/mlx5/core/cmd.c
STATUS_ERRNO = {
    BAD_OP: errno.EINVAL,
    BAD_PARAM: errno.EINVAL,
    BAD_RES: errno.EINVAL,
    RES_BUSY: errno.EBUSY,
    LIM_ERR: errno.ENOMEM,
    BAD_RES_STATE: errno.EINVAL,
    BAD_QP_STATE: errno.EINVAL,
}
