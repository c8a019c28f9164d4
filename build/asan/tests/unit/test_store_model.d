build/asan/tests/unit/test_store_model.o: tests/unit/test_store_model.c \
 tests/unit/test_store_common.h store/store.h tests/fakes/kv_fault.h \
 store/kv.h store/store.h
tests/unit/test_store_common.h:
store/store.h:
tests/fakes/kv_fault.h:
store/kv.h:
store/store.h:
