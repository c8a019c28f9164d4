build/rel/branchd/ctl.o: branchd/ctl.c branchd/ctl.h store/store.h \
 branchd/ctlproto.h branchd/json.h
branchd/ctl.h:
store/store.h:
branchd/ctlproto.h:
branchd/json.h:
