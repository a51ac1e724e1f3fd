// Stub: smartmongo imports it, CongoDB never uses it.
export default {};
export const MongoDump = class {};
