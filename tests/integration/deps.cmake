# A fresh machine has only what scripts/install-deps.sh installs: every system
# header the sources include and every program the scripts run must come
# from a package it names (or from the base system); self-checked.
add_test(NAME deps_check
  COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/integration/deps_test.py --repo ${PROJECT_SOURCE_DIR})
set_tests_properties(deps_check PROPERTIES TIMEOUT 120 LABELS "deps")
