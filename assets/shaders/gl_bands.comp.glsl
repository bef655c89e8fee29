#version 430 core
// bufferscope GL backend: the finite min/max keys of the *dirty bands* of a buffer
// texture, so that the front's range costs O(changed) per epoch (see _gpu.Gpu.finite_range).
//
// Each float's bits b are mapped to an order-preserving key:
//     key(b) = (b & 0x80000000) != 0 ? ~b : b | 0x80000000
// so that unsigned order of keys is the order of the floats, with -0.0 < +0.0
// (the two zeros get different keys; NaN and ±Inf are skipped, so no other ties).
//
// A band is `band_elems` consecutive elements (flat, C order). For each band
// listed in `bands`, one work group reduces its elements to their smallest and
// largest key (shared memory) and overwrites the band's two entries of `keys`;
// (0xFFFFFFFF, 0) means "no finite value in this band" (no finite key is either:
// 0xFFFFFFFF is +NaN's key, 0 is -NaN's). Work groups stride over the list, so a
// capped number of them covers any list. The worker reduces the bands' keys.
layout(local_size_x = 64) in;

layout(r32ui, binding = 0) uniform restrict readonly uimage2D source;
layout(std430, binding = 3) restrict buffer Keys { uint keys[]; };
layout(std430, binding = 4) restrict readonly buffer Bands { uint bands[]; };

uniform uint count;          // elements of the buffer (the texture may have padding)
uniform uint tex_width;
uniform uint band_elems;
uniform uint n_bands;        // entries of `bands`

shared uint s_min[64];
shared uint s_max[64];

void main()
{
    uint i = gl_LocalInvocationIndex;
    for (uint j = gl_WorkGroupID.x; j < n_bands; j += gl_NumWorkGroups.x) {
        uint band = bands[j];
        uint first = band * band_elems;
        uint last = min(count, first + band_elems);
        uint lo = 0xFFFFFFFFu;
        uint hi = 0u;
        for (uint k = first + i; k < last; k += gl_WorkGroupSize.x) {
            uint b = imageLoad(source, ivec2(int(k % tex_width), int(k / tex_width))).x;
            if ((b & 0x7F800000u) == 0x7F800000u)
                continue;        // NaN or ±Inf
            uint key = (b & 0x80000000u) != 0u ? ~b : (b | 0x80000000u);
            lo = min(lo, key);
            hi = max(hi, key);
        }
        s_min[i] = lo;
        s_max[i] = hi;
        memoryBarrierShared();
        barrier();
        for (uint half_n = 32u; half_n > 0u; half_n >>= 1u) {
            if (i < half_n) {
                s_min[i] = min(s_min[i], s_min[i + half_n]);
                s_max[i] = max(s_max[i], s_max[i + half_n]);
            }
            memoryBarrierShared();
            barrier();
        }
        if (i == 0u) {
            keys[2u * band] = s_min[0];
            keys[2u * band + 1u] = s_max[0];
        }
        barrier();           // s_min/s_max are reused by the next band
    }
}
