# Every dependency is a Debian package (deploy/install-deps.sh installs them).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(fmt 9 CONFIG REQUIRED)                 # fmt::fmt
find_package(RocksDB 7 CONFIG REQUIRED)             # RocksDB::rocksdb-shared
find_package(CapnProto 0.9 CONFIG REQUIRED)         # CapnProto::capnp, capnp_generate_cpp()
find_package(nng 1.5 CONFIG REQUIRED)               # nng::nng (Debian ships no nng.pc)
find_package(OpenSSL 3 REQUIRED)                    # OpenSSL::SSL, OpenSSL::Crypto
find_package(nlohmann_json 3 CONFIG REQUIRED)       # nlohmann_json::nlohmann_json
find_package(CLI11 CONFIG REQUIRED)                 # CLI11::CLI11
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)   # compiled with OpenSSL
pkg_check_modules(TOMLPP REQUIRED IMPORTED_TARGET tomlplusplus)
pkg_check_modules(SOFIA REQUIRED IMPORTED_TARGET sofia-sip-ua)   # -I/usr/include/sofia-sip-1.12
pkg_check_modules(SPANDSP REQUIRED IMPORTED_TARGET spandsp)      # tones, DTMF (media/apps)
pkg_check_modules(TIFF REQUIRED IMPORTED_TARGET libtiff-4)       # spandsp.h includes <tiffio.h>
