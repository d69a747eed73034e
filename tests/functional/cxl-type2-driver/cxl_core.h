/*
 * The CXL core internals cxl_type2.c uses.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef CXL_TYPE2_CXL_CORE_H
#define CXL_TYPE2_CXL_CORE_H

/*
 * Two CXL core entries an accelerator needs that Linux 7.2 exports but
 * declares only in drivers/cxl/ (not installed by linux-headers): the
 * register block lookup and the DPA partition setup.  The declarations
 * repeat the kernel's (drivers/cxl/cxl.h, drivers/cxl/cxlmem.h).
 */
enum cxl_regloc_type {
    CXL_REGLOC_RBI_EMPTY = 0,
    CXL_REGLOC_RBI_COMPONENT,
};

int cxl_find_regblock(struct pci_dev *pdev, enum cxl_regloc_type type,
                      struct cxl_register_map *map);
int cxl_setup_regs(struct cxl_register_map *map);

struct cxl_dpa_info {
    u64 size;
    struct cxl_dpa_part_info {
        struct range range;
        enum cxl_partition_mode mode;
    } part[CXL_NR_PARTITIONS_MAX];
    int nr_partitions;
};

int cxl_dpa_setup(struct cxl_dev_state *cxlds, const struct cxl_dpa_info *info);

#endif /* CXL_TYPE2_CXL_CORE_H */
