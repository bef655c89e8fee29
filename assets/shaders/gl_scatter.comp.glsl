#version 430 core
// bufferscope GL backend: element sets as a scatter, one invocation per set.
// `pairs` holds (flat offset, float32 bit pattern) per set. The worker removes
// repeated offsets first (keeping the last occurrence), so no two invocations
// write the same element and the result equals applying the sets in order.
layout(local_size_x = 64) in;

layout(r32ui, binding = 0) uniform restrict writeonly uimage2D target;
layout(std430, binding = 1) readonly restrict buffer Pairs { uvec2 pairs[]; };

uniform uint count;
uniform uint tex_width;

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint j = gl_GlobalInvocationID.x; j < count; j += stride) {
        uvec2 p = pairs[j];
        imageStore(target, ivec2(int(p.x % tex_width), int(p.x / tex_width)), uvec4(p.y));
    }
}
