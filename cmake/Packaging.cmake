# `cmake --install` and the Debian package (docs/operations.md, "Installing
# the package"): the binary, the systemd unit, the settings file and the
# runbook. The package installs under /usr; `cmake --install --prefix P`
# lays out the same tree under P (the unit then runs P/bin/usher).
include(GNUInstallDirs)

install(TARGETS usher RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# The unit names the binary by its installed path, known only at install
# time (CPack installs with its own prefix): written then.
install(CODE "
  set(USHER_UNIT_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
  configure_file(\"${CMAKE_SOURCE_DIR}/packaging/usher.service.in\"
                 \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/lib/systemd/system/usher.service\"
                 @ONLY)
  message(STATUS \"Installing: \$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/lib/systemd/system/usher.service\")
")
# The settings file is /etc/usher/usher.env whatever the prefix: the unit
# reads it there.
install(FILES ${CMAKE_SOURCE_DIR}/packaging/usher.env DESTINATION /etc/usher
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/docs/operations.md
              ${CMAKE_SOURCE_DIR}/docs/configuration.md ${CMAKE_SOURCE_DIR}/docs/metrics.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
# Example Prometheus alert rules (docs/operations.md "Alerting on metrics").
install(FILES ${CMAKE_SOURCE_DIR}/packaging/prometheus/usher-rules.yml
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/prometheus)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME usher)
set(CPACK_PACKAGE_VENDOR "usher")
set(CPACK_PACKAGE_CONTACT "usher maintainers <ops@example.com>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "provisions customer accounts exactly once (HTTP API, worker)")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The shared libraries' packages, found by dpkg-shlibdeps from the binary;
# libcurl4 and libsoci-postgresql4.0 (with libpq5) are named here because
# usher loads them with dlopen on first use (util/curl_library.hpp,
# store/postgres_library.hpp), so the binary does not list them. 7.84:
# thread-safe curl_global_init.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, libcurl4 (>= 7.84), libsoci-postgresql4.0, libpq5")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/debian/postinst ${CMAKE_SOURCE_DIR}/packaging/debian/postrm
    ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_STRIP_FILES TRUE)
include(CPack)
