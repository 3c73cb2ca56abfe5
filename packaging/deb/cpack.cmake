# packaging/deb/cpack.cmake: the Debian package of recrypt, built by CPack's
# DEB generator. The top-level CMakeLists.txt includes it last:
#
#     include(packaging/deb/cpack.cmake)
#
# Without -DRECRYPT_DEB=ON it only sets up CPack (no extra install rules), so
# a plain `cmake --install` keeps installing just the binaries and the man
# pages. packaging/build-deb.sh configures with -DRECRYPT_DEB=ON
# -DCMAKE_INSTALL_PREFIX=/usr, builds, and runs `cpack -G DEB`.
# See packaging/README.md, "The Debian package".

option(RECRYPT_DEB "Install the files of the Debian package (/etc, unit, AppArmor, doc)" OFF)

set(_recrypt_deb_dir ${CMAKE_CURRENT_LIST_DIR})
include(GNUInstallDirs)

if(RECRYPT_DEB)
  if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    message(FATAL_ERROR "RECRYPT_DEB needs -DCMAKE_INSTALL_PREFIX=/usr (the unit and the AppArmor profile name /usr/sbin/recrypt-milter)")
  endif()
  # Absolute destinations: the DEB generator installs into its staging
  # directory with DESTDIR, so they land in /etc and /lib of the package.
  install(FILES ${PROJECT_SOURCE_DIR}/policy/recrypt-milter.conf
          DESTINATION /etc/recrypt PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/recrypt-milter.service
          DESTINATION /lib/systemd/system PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  install(FILES ${PROJECT_SOURCE_DIR}/policy/apparmor/usr.sbin.recrypt-milter
          DESTINATION /etc/apparmor.d PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  # The init script, for machines without systemd as PID 1 (a conffile,
  # as every file in /etc/init.d).
  install(PROGRAMS ${PROJECT_SOURCE_DIR}/packaging/recrypt-milter.init
          DESTINATION /etc/init.d RENAME recrypt-milter)
  # The guides and the format documents the man pages cite.
  install(FILES ${PROJECT_SOURCE_DIR}/docs/admin-guide.md
                ${PROJECT_SOURCE_DIR}/docs/owner-guide.md
                ${PROJECT_SOURCE_DIR}/docs/subscriber-guide.md
                ${PROJECT_SOURCE_DIR}/docs/FORMAT.md
                ${PROJECT_SOURCE_DIR}/docs/REQUESTS.md
                ${PROJECT_SOURCE_DIR}/docs/STORE.md
                ${PROJECT_SOURCE_DIR}/docs/NATIVE-HOST.md
          DESTINATION ${CMAKE_INSTALL_DOCDIR}
          PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

  # /usr/share/doc/recrypt: copyright (plain) and changelog.Debian.gz
  # (gzip -9n: no name, no time stamp, so the package is reproducible).
  set(_recrypt_deb_build ${CMAKE_BINARY_DIR}/deb)
  file(MAKE_DIRECTORY ${_recrypt_deb_build})
  set(RECRYPT_DEB_VERSION "${PROJECT_VERSION}-1")
  configure_file(${_recrypt_deb_dir}/changelog.Debian.in ${_recrypt_deb_build}/changelog.Debian @ONLY)
  execute_process(COMMAND gzip -9n -c ${_recrypt_deb_build}/changelog.Debian
                  OUTPUT_FILE ${_recrypt_deb_build}/changelog.Debian.gz
                  RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "gzip of changelog.Debian failed")
  endif()
  install(FILES ${_recrypt_deb_dir}/copyright ${_recrypt_deb_build}/changelog.Debian.gz
          DESTINATION ${CMAKE_INSTALL_DOCDIR}
          PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endif()

# ---- CPack ---------------------------------------------------------------
set(CPACK_PACKAGE_NAME recrypt)
set(CPACK_PACKAGE_VENDOR "recrypt")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "recrypt maintainers <recrypt@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "end-to-end encrypted mailing list gateway")
set(CPACK_PACKAGE_DESCRIPTION
"recrypt keeps the posts of a mailing list encrypted end to end: senders
seal a post to the list's key, and the gateway re-encrypts it for every
member's devices by proxy re-encryption, without ever seeing the text.
This package contains the recrypt command-line tool for subscribers and
senders, recryptctl for list owners and mail administrators, and
recrypt-milter, the gateway daemon for Postfix and Sendmail, with its
systemd unit and AppArmor profile.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)

set(CPACK_DEBIAN_PACKAGE_NAME recrypt)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://example.org/recrypt")
# Shared libraries (libc6, libsodium, libgmime, libdecaf, liblmdb,
# libmilter: recrypt-milter has its own milter engine) from dpkg-shlibdeps; librecrypt and the store are static
# libraries linked into the binaries. adduser: postinst/postrm.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "apparmor, postfix | sendmail")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${_recrypt_deb_dir}/conffiles
    ${_recrypt_deb_dir}/postinst
    ${_recrypt_deb_dir}/prerm
    ${_recrypt_deb_dir}/postrm)
# 0755 for the maintainer scripts, 0644 for conffiles, whatever the
# checkout's modes are.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Man pages gzip -9n and executables without .comment/.note, as Debian
# wants: done in the staging directory before the package is made.
set(CPACK_PRE_BUILD_SCRIPTS ${_recrypt_deb_dir}/prebuild.cmake)

include(CPack)
