// Port meshes of the test workers, wired as the supervisor wires them: a new worker gets a
// MessageChannel to each live one, and a dead one's ports are dropped by every other.
import { PortMesh } from "../src/cluster/bus_port_mesh.ts";

/** A mesh for worker `i` with a port to each live mesh in `meshes` (which takes the other end). */
export function joinMesh(meshes: readonly (PortMesh | undefined)[], i: number): PortMesh {
  const mesh = new PortMesh();
  for (const [j, other] of meshes.entries()) {
    if (other === undefined || j === i) continue;
    const { port1, port2 } = new MessageChannel();
    other.connect(i, port2);
    mesh.connect(j, port1);
  }
  return mesh;
}

/** Worker `i` died without a word: every other mesh in `meshes` drops its port to it. */
export function leaveMesh(meshes: readonly (PortMesh | undefined)[], i: number): void {
  for (const [j, mesh] of meshes.entries()) if (j !== i) mesh?.disconnect(i);
}
