#version 430 core
// bufferscope GL backend: Fill, Add, Scale and Write on a group of pairwise
// disjoint boxes, one invocation per element (a grid-stride loop covers any size).
//
// Box k is 8 uints in `boxes`: first (the prefix sum of the volumes before it),
// start0, start1, start2, extent1, extent2, op, arg. arg is the value's float32
// bit pattern, or for a Write the offset of its data in `payload`. The boxes of
// one group never overlap, so no two invocations touch the same element and the
// order inside the group does not matter; groups are dispatched in queue order.
layout(local_size_x = 64) in;

layout(r32ui, binding = 0) uniform restrict uimage2D target;
layout(std430, binding = 1) readonly restrict buffer Boxes { uint boxes[]; };
layout(std430, binding = 2) readonly restrict buffer Payload { uint payload[]; };

uniform uint n_boxes;
uniform uint total;          // sum of the volumes
uniform uint tex_width;
uniform uvec2 dims;          // shape (padded to 3-d) [1] and [2]

const uint OP_FILL = 1u;
const uint OP_ADD = 2u;
const uint OP_SCALE = 3u;
const uint OP_WRITE = 4u;

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint g = gl_GlobalInvocationID.x; g < total; g += stride) {
        // The box holding element g: the last one whose first is <= g.
        uint lo = 0u, hi = n_boxes - 1u;
        while (lo < hi) {
            uint mid = (lo + hi + 1u) >> 1u;
            if (boxes[mid * 8u] <= g) lo = mid; else hi = mid - 1u;
        }
        uint b = lo * 8u;
        uint local = g - boxes[b];
        uint e2 = boxes[b + 5u];
        uint e1 = boxes[b + 4u];
        uint rest = local / e2;
        uint i2 = boxes[b + 3u] + local % e2;
        uint i1 = boxes[b + 2u] + rest % e1;
        uint i0 = boxes[b + 1u] + rest / e1;
        uint off = (i0 * dims.x + i1) * dims.y + i2;
        ivec2 p = ivec2(int(off % tex_width), int(off / tex_width));
        uint op = boxes[b + 6u];
        uint arg = boxes[b + 7u];
        uint bits;
        if (op == OP_FILL) {
            bits = arg;
        } else if (op == OP_WRITE) {
            bits = payload[arg + local];
        } else {
            // IEEE float32 arithmetic, as numpy does it: `precise` forbids
            // reassociation and fused multiply-adds.
            precise float old = uintBitsToFloat(imageLoad(target, p).x);
            precise float v = uintBitsToFloat(arg);
            precise float r = (op == OP_ADD) ? old + v : old * v;
            bits = floatBitsToUint(r);
        }
        imageStore(target, p, uvec4(bits));
    }
}
