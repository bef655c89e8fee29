#version 430 core
// bufferscope GL backend: element sets as a scatter, one invocation per set.
// `sets` is a buffer texture (RG32UI) of (flat offset, float32 bit pattern) per
// set: llvmpipe fetches texels several times faster than it loads from a shader
// storage buffer. The worker removes repeated offsets first (keeping the last
// occurrence), so no two invocations write the same element and the result
// equals applying the sets in order.
layout(local_size_x = 64) in;

layout(r32ui, binding = 0) uniform restrict writeonly uimage2D target;
uniform usamplerBuffer sets;

uniform uint count;
uniform uint tex_width;

void main()
{
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    for (uint j = gl_GlobalInvocationID.x; j < count; j += stride) {
        uvec2 p = texelFetch(sets, int(j)).xy;
        imageStore(target, ivec2(int(p.x % tex_width), int(p.x / tex_width)), uvec4(p.y));
    }
}
