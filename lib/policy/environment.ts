// Which of the job's variables enter its container (a queue's `environment`). Docker lays
// an exec's variables over the container's own (the image's ENV): a variable that stays out
// leaves the image's value in place, so by default the image keeps its PATH and libraries.
// What passes is data for the job; nothing here steers cbatch.
import picomatch from 'picomatch'

export interface EnvironmentPolicy {
  pass: string[]
  drop: string[]
}

/** The job's variables that enter its container: matching `pass`, not matching `drop`. */
export function enteringEnvironment(env: NodeJS.ProcessEnv, policy: EnvironmentPolicy): NodeJS.ProcessEnv {
  const passes = picomatch(policy.pass, { dot: true })
  const drops = picomatch(policy.drop.length ? policy.drop : ['\0'], { dot: true })
  return Object.fromEntries(Object.entries(env).filter(([name]) => passes(name) && !drops(name)))
}
