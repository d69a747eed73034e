// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * cxl_type2: the smallest accelerator driver that lets the guest's own CXL
 * core judge a CXL Type-2 device, as a real accelerator driver would.
 *
 * It binds the simulator's device (1234:c202; any other through new_id),
 * creates its CXL device state as CXL_DEVTYPE_DEVMEM, describes the device
 * memory named by DVSEC range 1 as one RAM partition, and asks the CXL
 * core for its memory (devm_cxl_probe_mem()).  The core then adds the
 * memdev, enumerates the ports up to the root, adds the endpoint port with
 * its decoders and attaches the region assembled over the committed
 * decoders; what it hands back is the host physical range of that region.
 * The driver maps the range and offers it to user space, so the test can
 * exchange data with the host through the driver's own mapping:
 *
 *   /sys/bus/pci/devices/<bdf>/cxl_memdev      memdev the core created
 *   /sys/bus/pci/devices/<bdf>/cxl_hpa         "<start> <size>" (hex)
 *   /sys/bus/pci/devices/<bdf>/cxl_mem         device memory, read/write
 *
 * Anything the core refuses fails the probe with the core's own messages
 * in the log: the driver does not work around what the device presents.
 * Built against Debian's linux-headers (see build.sh); Linux 7.2 or later.
 */

#include <linux/io.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/range.h>
#include <linux/sysfs.h>
#include <cxl/cxl.h>
#include "cxl_core.h"

#define SIM_VENDOR 0x1234
#define SIM_DEVICE 0xc202

struct cxl_type2 {
    struct cxl_dev_state cxlds; /* first: devm_cxl_dev_state_create() */
    struct cxl_memdev *cxlmd;
    /* The memdev's device (struct cxl_memdev is opaque outside drivers/cxl). */
    struct device *memdev;
    struct range hpa;
    void *mem;
};

/* DVSEC range 1: its size, and whether the device says it is usable. */
static int range1_size(struct pci_dev *pdev, u16 dvsec, u64 *size)
{
    u32 hi, lo;

    pci_read_config_dword(pdev, dvsec + PCI_DVSEC_CXL_RANGE_SIZE_HIGH(0), &hi);
    pci_read_config_dword(pdev, dvsec + PCI_DVSEC_CXL_RANGE_SIZE_LOW(0), &lo);
    if (!(lo & PCI_DVSEC_CXL_MEM_INFO_VALID) ||
        !(lo & PCI_DVSEC_CXL_MEM_ACTIVE)) {
        pci_err(pdev, "DVSEC range 1 not valid and active (0x%08x)\n", lo);
        return -ENODEV;
    }
    *size = (u64)hi << 32 | (lo & PCI_DVSEC_CXL_MEM_SIZE_LOW);
    return *size ? 0 : -ENODEV;
}

static ssize_t cxl_memdev_show(struct device *dev,
                               struct device_attribute *attr, char *buf)
{
    struct cxl_type2 *t2 = dev_get_drvdata(dev);

    return sysfs_emit(buf, "%s\n", dev_name(t2->memdev));
}
static DEVICE_ATTR_RO(cxl_memdev);

static ssize_t cxl_hpa_show(struct device *dev,
                            struct device_attribute *attr, char *buf)
{
    struct cxl_type2 *t2 = dev_get_drvdata(dev);

    return sysfs_emit(buf, "0x%llx 0x%llx\n", t2->hpa.start,
                      range_len(&t2->hpa));
}
static DEVICE_ATTR_RO(cxl_hpa);

/* Clamps an access at @pos of @count bytes to the mapped range. */
static size_t mem_span(struct cxl_type2 *t2, loff_t pos, size_t count)
{
    u64 len = range_len(&t2->hpa);

    if (pos < 0 || pos >= len) {
        return 0;
    }
    return min_t(u64, count, len - pos);
}

static ssize_t cxl_mem_read(struct file *f, struct kobject *kobj,
                            const struct bin_attribute *attr, char *buf,
                            loff_t pos, size_t count)
{
    struct cxl_type2 *t2 = dev_get_drvdata(kobj_to_dev(kobj));

    count = mem_span(t2, pos, count);
    memcpy(buf, t2->mem + pos, count);
    return count;
}

static ssize_t cxl_mem_write(struct file *f, struct kobject *kobj,
                             const struct bin_attribute *attr, char *buf,
                             loff_t pos, size_t count)
{
    struct cxl_type2 *t2 = dev_get_drvdata(kobj_to_dev(kobj));

    count = mem_span(t2, pos, count);
    memcpy(t2->mem + pos, buf, count);
    return count;
}
/* Size 0: sysfs leaves the bounds to mem_span(). */
static const BIN_ATTR_ADMIN_RW(cxl_mem, 0);

static struct attribute *cxl_type2_attrs[] = {
    &dev_attr_cxl_memdev.attr,
    &dev_attr_cxl_hpa.attr,
    NULL,
};

static const struct bin_attribute *const cxl_type2_bin_attrs[] = {
    &bin_attr_cxl_mem,
    NULL,
};

static const struct attribute_group cxl_type2_group = {
    .attrs = cxl_type2_attrs,
    .bin_attrs = cxl_type2_bin_attrs,
};

static const struct attribute_group *cxl_type2_groups[] = {
    &cxl_type2_group,
    NULL,
};

/* The memdev is the PCI device's child on the "cxl" bus. */
static int is_memdev(struct device *dev, const void *unused)
{
    return dev->bus && !strcmp(dev->bus->name, "cxl") &&
           !strncmp(dev_name(dev), "mem", 3);
}

static void put_memdev(void *dev)
{
    put_device(dev);
}

static int cxl_type2_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
    struct cxl_dpa_info dpa = { .nr_partitions = 1 };
    struct cxl_dev_state *cxlds;
    struct cxl_type2 *t2;
    u16 dvsec;
    u64 size;
    int rc;

    rc = pcim_enable_device(pdev);
    if (rc) {
        return rc;
    }
    pci_set_master(pdev);

    dvsec = pci_find_dvsec_capability(pdev, PCI_VENDOR_ID_CXL,
                                      PCI_DVSEC_CXL_DEVICE);
    if (!dvsec) {
        return dev_err_probe(&pdev->dev, -ENODEV, "no CXL Device DVSEC\n");
    }
    rc = range1_size(pdev, dvsec, &size);
    if (rc) {
        return rc;
    }

    t2 = devm_cxl_dev_state_create(&pdev->dev, CXL_DEVTYPE_DEVMEM,
                                   pci_get_dsn(pdev), dvsec,
                                   struct cxl_type2, cxlds, false);
    if (!t2) {
        return -ENOMEM;
    }
    cxlds = &t2->cxlds;

    /* The component registers: the endpoint port's HDM decoders. */
    rc = cxl_find_regblock(pdev, CXL_REGLOC_RBI_COMPONENT, &cxlds->reg_map);
    if (rc) {
        return dev_err_probe(&pdev->dev, rc, "no component register block\n");
    }
    rc = cxl_setup_regs(&cxlds->reg_map);
    if (rc) {
        return dev_err_probe(&pdev->dev, rc, "component registers\n");
    }

    /* All of the device memory is one RAM partition. */
    dpa.size = size;
    dpa.part[0].range = (struct range){ 0, size - 1 };
    dpa.part[0].mode = CXL_PARTMODE_RAM;
    rc = cxl_dpa_setup(cxlds, &dpa);
    if (rc) {
        return dev_err_probe(&pdev->dev, rc, "DPA partition setup\n");
    }
    /* range1_size() saw Memory_Active: the media is ready. */
    cxlds->media_ready = true;

    t2->cxlmd = devm_cxl_probe_mem(cxlds, &t2->hpa);
    if (IS_ERR(t2->cxlmd)) {
        return dev_err_probe(&pdev->dev, PTR_ERR(t2->cxlmd),
                             "the CXL core did not accept the memory\n");
    }

    t2->memdev = device_find_child(&pdev->dev, NULL, is_memdev);
    if (!t2->memdev) {
        return dev_err_probe(&pdev->dev, -ENODEV, "memdev not found\n");
    }
    rc = devm_add_action_or_reset(&pdev->dev, put_memdev, t2->memdev);
    if (rc) {
        return rc;
    }

    t2->mem = devm_memremap(&pdev->dev, t2->hpa.start, range_len(&t2->hpa),
                            MEMREMAP_WB);
    if (IS_ERR(t2->mem)) {
        return dev_err_probe(&pdev->dev, PTR_ERR(t2->mem),
                             "mapping HPA 0x%llx-0x%llx\n", t2->hpa.start,
                             t2->hpa.end);
    }
    pci_set_drvdata(pdev, t2);
    pci_info(pdev, "memdev %s, HPA 0x%llx-0x%llx (%llu MiB) mapped\n",
             dev_name(t2->memdev), t2->hpa.start, t2->hpa.end,
             range_len(&t2->hpa) >> 20);
    return 0;
}

static const struct pci_device_id cxl_type2_ids[] = {
    { PCI_DEVICE(SIM_VENDOR, SIM_DEVICE) },
    { }
};
MODULE_DEVICE_TABLE(pci, cxl_type2_ids);

static struct pci_driver cxl_type2_driver = {
    .name = "cxl_type2",
    .id_table = cxl_type2_ids,
    .probe = cxl_type2_probe,
    .dev_groups = cxl_type2_groups,
};
module_pci_driver(cxl_type2_driver);

MODULE_DESCRIPTION("Minimal CXL Type-2 accelerator driver (vfio-cxl tests)");
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS("CXL");
