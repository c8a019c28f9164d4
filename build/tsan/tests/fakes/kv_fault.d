build/tsan/tests/fakes/kv_fault.o: tests/fakes/kv_fault.c \
 tests/fakes/kv_fault.h store/kv.h store/store.h
tests/fakes/kv_fault.h:
store/kv.h:
store/store.h:
