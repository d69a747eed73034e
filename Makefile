# vfio-cxl: the two commands a newcomer needs.
#
#   make demo    build what is missing, then run the demo
#   make check   build what is missing, then run every test and lint
#   make check-sanitizers   the qtests on an ASan/UBSan build (CI runs it too)
#   make bench   build what is missing, then print the benchmark table
#
# Everything slow (QEMU source, build tree, ccache, cargo) is cached under
# $(VFIO_CXL_CACHE), default ~/.cache/vfio-cxl, outside this tree.

.PHONY: demo check check-sanitizers build bench
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
