#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pbx::ship {

// CRC-32C (Castagnoli, as in iSCSI and ext4), the checksum of every frame, shipped batch and
// checkpoint chunk (FORMAT.md). RocksDB has one too, but it is not public API.
// Crc32cExtend(Crc32c(a), b) == Crc32c(a + b), so a whole file can be summed chunk by chunk.
// Thread-safe (pure functions).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t size);
inline uint32_t Crc32c(std::string_view data) { return Crc32cExtend(0, data.data(), data.size()); }

}  // namespace pbx::ship
