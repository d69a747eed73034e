# vfio-cxl: the two commands a newcomer needs.
#
#   make demo    build what is missing, then run the demo
#   make check   build what is missing, then run every test and lint
#   make check-sanitizers   the qtests on an ASan/UBSan build (CI runs it too)
#   make bench   build what is missing, then print the benchmark table
#   make patches        write the overlay as a QEMU patch series
#   make check-patches  the series applies, builds at every patch, passes
#                       checkpatch.pl and the qtests (CI runs it too)
#
# Everything slow (QEMU source, build tree, ccache, cargo) is cached under
# $(VFIO_CXL_CACHE), default ~/.cache/vfio-cxl, outside this tree.

.PHONY: demo check check-sanitizers build bench patches check-patches
demo:
	@bash mk/demo.sh
check:
	@bash mk/check.sh
check-sanitizers:
	@bash mk/check-sanitizers.sh
build:
	@bash mk/build.sh
bench:
	@bash mk/bench.sh
# OUT=DIR writes the series there (default $(VFIO_CXL_CACHE)/patches/series).
patches:
	@bash mk/patches.sh $(OUT)
check-patches:
	@bash mk/check-patches.sh
