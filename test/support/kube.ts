import type { CoreV1Api } from '@kubernetes/client-node';
import { uniqueName } from './fixtures';
import { until } from './processes';

/**
 * A fresh namespace for one test on the test control plane, ready for pods: they need the namespace's
 * default ServiceAccount, which kube-controller-manager creates shortly after the namespace.
 */
export async function createNamespace(core: CoreV1Api, stem: string): Promise<string> {
  const ns = uniqueName(stem).toLowerCase().slice(0, 63);
  await core.createNamespace({ body: { metadata: { name: ns } } });
  await until(
    () =>
      core.readNamespacedServiceAccount({ name: 'default', namespace: ns }).then(
        () => true,
        () => false,
      ),
    20_000,
    'default service account',
  );
  return ns;
}
