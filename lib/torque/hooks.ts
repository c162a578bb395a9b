// The programs cbatch gives pbs_mom, in one list: the wrappers (hooks/wrapper.ts), the
// loader (hooks/load.ts), the build (scripts/build.mjs, which also writes dist/hooks.txt
// for install.sh) and cbatch doctor all read it, so a new hook is added here only.
import { CANNOT_RUN_EXIT, type ProgramName } from './contract.ts'

export interface Hook {
  /** The loader's argument and CBATCH_HOOK; the wrapper's name in dist/. */
  name: ProgramName
  /** hooks/<bundle>.ts, built to cbatch.d/<bundle>.cjs: a sister's script shares its hook's. */
  bundle: string
  /** Where pbs_mom finds its wrapper in mom_priv; none for the puller and the remover, which a prologue and an epilogue start. */
  momPrivFile?: string
  /** pbs_mom runs it for every job; the node check is the site's choice (install.sh --no-node-check). */
  required: boolean
  /** What it exits with when cbatch cannot run at all, in pbs_mom's terms for it (contract.ts). */
  cannotRunExit: number
}

const hook = (name: ProgramName, bundle: string, momPrivFile: string | undefined, required = true): Hook =>
  ({ name, bundle, momPrivFile, required, cannotRunExit: CANNOT_RUN_EXIT[name] })

export const HOOKS: readonly Hook[] = [
  hook('prologue', 'prologue', 'prologue'),
  hook('prologue.parallel', 'prologue', 'prologue.parallel'),
  hook('jobstarter', 'jobstarter', 'jobstarter'),
  hook('epilogue', 'epilogue', 'epilogue'),
  hook('epilogue.parallel', 'epilogue', 'epilogue.parallel'),
  // pbs_mom's own name for no program: ours, named in $node_check_script.
  hook('nodecheck', 'nodecheck', 'cbatch-nodecheck', false),
  hook('puller', 'puller', undefined, false),
  hook('remover', 'remover', undefined, false),
]

/** The hooks pbs_mom runs through a wrapper in mom_priv. */
export const WRAPPED_HOOKS = HOOKS.filter((h): h is Hook & { momPrivFile: string } => h.momPrivFile !== undefined)

/** The bundles in cbatch.d/, the loader's first. */
export const BUNDLES = ['load', ...new Set(HOOKS.map(h => h.bundle))]

export function hookNamed(name: string): Hook | undefined {
  return HOOKS.find(h => h.name === name)
}
