#version 430 core
// bufferscope GL backend: the exact min and max of the finite values of a buffer
// (the front texture, float32 bit patterns in R32UI), reduced on the GPU.
//
// Each float's bits b are mapped to an order-preserving key:
//     key(b) = (b & 0x80000000) != 0 ? ~b : b | 0x80000000
// so that unsigned order of keys is the order of the floats, with -0.0 < +0.0
// (the two zeros get different keys; NaN and ±Inf are skipped, so no other
// ties exist). Each invocation reduces a grid-stride slice of the elements,
// the work group reduces its 64 partial results in shared memory, and one
// invocation per group folds them into `range` with atomicMin / atomicMax.
// The worker sets range = (0xFFFFFFFF, 0) first: no finite key is either of
// those (0xFFFFFFFF is +NaN's key, 0 is -NaN's), so they mean "no finite value".
layout(local_size_x = 64) in;

layout(r32ui, binding = 0) uniform restrict readonly uimage2D source;
layout(std430, binding = 3) restrict coherent buffer Range { uint range[2]; };

uniform uint count;          // elements of the buffer (the texture may have padding)
uniform uint tex_width;

shared uint s_min[64];
shared uint s_max[64];

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    uint lo = 0xFFFFFFFFu;
    uint hi = 0u;
    for (uint k = gl_GlobalInvocationID.x; k < count; k += stride) {
        uint b = imageLoad(source, ivec2(int(k % tex_width), int(k / tex_width))).x;
        if ((b & 0x7F800000u) == 0x7F800000u)
            continue;        // NaN or ±Inf
        uint key = (b & 0x80000000u) != 0u ? ~b : (b | 0x80000000u);
        lo = min(lo, key);
        hi = max(hi, key);
    }
    uint i = gl_LocalInvocationIndex;
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
        if (s_min[0] != 0xFFFFFFFFu)
            atomicMin(range[0], s_min[0]);
        if (s_max[0] != 0u)
            atomicMax(range[1], s_max[0]);
    }
}
